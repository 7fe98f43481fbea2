"""One convolution layer at a time: XLA's kernels against PyTorch's.

Run from the repository root (needs `pip install torch==2.13.0`):

    python -m benchmarks.conv_layers                 # every layer, batch 128
    python -m benchmarks.conv_layers --batch 512 --repeats 3

The train-step benchmark (benchmarks/train_step.py) compares whole steps.
This one isolates the convolutions, which hold most of a step's FLOPs: for
the main layer shapes of the default encoders (ResNet-18's 3x3 stages and
first strided convolution, the audio CNN's 3x3 stages on log-mels, the
sensor ResNet's width-5 1-D stages), the forward pass, the input gradient
(dx) and the kernel gradient (dw), each jitted alone with the train step's
CPU options (`configs/common.py`), against torch's channels-last
`conv2d` / `conv1d` and `aten.convolution_backward` on the same arrays.
`--batch` counts the examples through a layer: the train step's global batch
times its two views. Times are CPU milliseconds (all threads) of the median
of `--repeats` runs; `ratio` is torch's time over ours, above 1 where ours
is faster.
"""
from __future__ import annotations

import argparse
import statistics
from typing import Callable, NamedTuple

from benchmarks.train_step import time_calls

# The convolutions of the default encoders (configs/common.py) at the
# benchmark's shapes: spatial size per image, channels in and out, kernel.
class Layer(NamedTuple):
  encoder: str
  spatial: tuple[int, ...]
  channels_in: int
  channels_out: int
  kernel: int
  stride: int = 1


LAYERS = (
    Layer("resnet18", (28, 28), 64, 64, 3),
    Layer("resnet18", (28, 28), 64, 128, 3, 2),
    Layer("resnet18", (14, 14), 128, 128, 3),
    Layer("resnet18", (7, 7), 256, 256, 3),
    Layer("resnet18", (4, 4), 512, 512, 3),
    Layer("audio_cnn", (98, 64), 32, 32, 3),
    Layer("audio_cnn", (49, 32), 64, 64, 3),
    Layer("audio_cnn", (25, 16), 128, 128, 3),
    Layer("audio_cnn", (13, 8), 256, 256, 3),
    Layer("sensor_resnet1d", (128,), 64, 64, 5),
    Layer("sensor_resnet1d", (64,), 128, 128, 5),
    Layer("sensor_resnet1d", (32,), 256, 256, 5),
)
PARTS = ("fwd", "dx", "dw")


def _cpu_ms(fn: Callable[[], object], repeats: int) -> float:
  """Median CPU milliseconds of `fn()` after one untimed call."""
  _, cpu = time_calls(fn, warmup=1, steps=repeats)
  return 1e3 * statistics.median(cpu)


def time_jax(layer: Layer, batch: int, repeats: int) -> dict[str, float]:
  import jax  # pylint: disable=import-outside-toplevel
  from jax import lax  # pylint: disable=import-outside-toplevel
  from configs import common  # pylint: disable=import-outside-toplevel
  from contrastive.train.compiler import compiler_options  # pylint: disable=import-outside-toplevel

  options = compiler_options(common.base_config("fashion_mnist"))
  rank = len(layer.spatial)
  kx, kw, kd = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (batch, *layer.spatial, layer.channels_in))
  w = 0.05 * jax.random.normal(
      kw, (layer.kernel,) * rank + (layer.channels_in, layer.channels_out))
  specs = ("NHWC", "HWIO", "NHWC") if rank == 2 else ("NWC", "WIO", "NWC")
  pad = layer.kernel // 2

  def conv(x, w):
    return lax.conv_general_dilated(
        x, w, (layer.stride,) * rank, ((pad, pad),) * rank,
        dimension_numbers=specs)

  dy = jax.random.normal(kd, jax.eval_shape(conv, x, w).shape)
  fns = {
      "fwd": (conv, (x, w)),
      "dx": (lambda w, dy: jax.vjp(lambda x: conv(x, w), x)[1](dy)[0],
             (w, dy)),
      "dw": (lambda x, dy: jax.vjp(lambda w: conv(x, w), w)[1](dy)[0],
             (x, dy)),
  }
  result = {}
  for part, (fn, args) in fns.items():
    compiled = jax.jit(fn).lower(*args).compile(compiler_options=options)
    result[part] = _cpu_ms(
        lambda c=compiled, a=args: jax.block_until_ready(c(*a)), repeats)
  return result


def time_torch(layer: Layer, batch: int, repeats: int) -> dict[str, float]:
  import os  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel

  torch.set_num_threads(os.cpu_count() or 1)
  rank = len(layer.spatial)
  x = torch.randn(batch, layer.channels_in, *layer.spatial)
  w = 0.05 * torch.randn(layer.channels_out, layer.channels_in,
                         *(layer.kernel,) * rank)
  if rank == 2:  # channels-last, as the train-step twin
    x = x.contiguous(memory_format=torch.channels_last)
    w = w.contiguous(memory_format=torch.channels_last)
  conv = torch.nn.functional.conv2d if rank == 2 else torch.nn.functional.conv1d
  stride, pad = [layer.stride] * rank, [layer.kernel // 2] * rank
  dy = torch.randn_like(conv(x, w, stride=stride, padding=pad))
  if rank == 2:
    dy = dy.contiguous(memory_format=torch.channels_last)

  def backward(mask):
    return torch.ops.aten.convolution_backward(
        dy, x, w, None, stride, pad, [1] * rank, False, [0] * rank, 1, mask)

  fns = {"fwd": lambda: conv(x, w, stride=stride, padding=pad),
         "dx": lambda: backward([True, False, False]),
         "dw": lambda: backward([False, True, False])}
  with torch.no_grad():
    return {part: _cpu_ms(fn, repeats) for part, fn in fns.items()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=128,
                      help="examples through each layer (global batch x 2"
                           " views)")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  print(f"CPU ms per call, median of {args.repeats}; {args.batch} examples;"
        " ratio = torch / ours (> 1: ours faster)")
  header = (f"{'encoder':16s} {'layer':22s}"
            + "".join(f" {p + ' jax':>8s} {p + ' torch':>9s}" for p in PARTS)
            + f" {'ratio':>6s}")
  print(header)
  print("-" * len(header))
  totals = {"jax": 0.0, "torch": 0.0}
  for layer in LAYERS:
    ours = time_jax(layer, args.batch, args.repeats)
    theirs = time_torch(layer, args.batch, args.repeats)
    totals["jax"] += sum(ours.values())
    totals["torch"] += sum(theirs.values())
    shape = "x".join(map(str, layer.spatial))
    name = (f"{shape} {layer.channels_in}->{layer.channels_out}"
            f" k{layer.kernel}" + (f" s{layer.stride}" if layer.stride > 1
                                   else ""))
    print(f"{layer.encoder:16s} {name:22s}"
          + "".join(f" {ours[p]:8.1f} {theirs[p]:9.1f}" for p in PARTS)
          + f" {sum(theirs.values()) / sum(ours.values()):6.2f}", flush=True)
  print(f"all layers: ours {totals['jax']:.0f} ms, torch"
        f" {totals['torch']:.0f} ms, ratio"
        f" {totals['torch'] / totals['jax']:.2f}")


if __name__ == "__main__":
  main()
