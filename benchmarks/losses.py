"""Direct vs streamed queue-mode InfoNCE and HCL: time and peak memory.

Run from the repository root:

    python -m benchmarks.losses          # n in {256, 1024}, k in {4096, 65536}
    python -m benchmarks.losses --quick    # a tiny run, seconds
    python -m benchmarks.losses --chunk-size 8192 --repeats 5

Each case times `jax.value_and_grad` of the loss with respect to the queries
`z1` only, as in MoCo (keys and queue carry no gradient), jitted; the time is
the median of `--repeats` runs after compilation, each ended by
`block_until_ready`. Memory is the compiled executable's
`memory_analysis()`: temp + argument + output bytes, i.e. XLA's buffer
assignment for the whole program, the peak it reserves (on CPU there is no
allocator statistic to read instead).
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp

from contrastive.losses.debiased import hard_negative_infonce
from contrastive.losses.infonce import infonce

_TEMPERATURE = 0.2
_TAU_PLUS = 0.1
_BETA = 1.0


def _loss_fns(chunk_size: int) -> dict[str, Callable[..., jax.Array]]:
  def nce(streaming):
    return lambda z1, z2, queue: infonce(
        z1, z2, temperature=_TEMPERATURE, negatives=queue,
        streaming=streaming, chunk_size=chunk_size)[0]

  def hcl(streaming):
    return lambda z1, z2, queue: hard_negative_infonce(
        z1, z2, temperature=_TEMPERATURE, tau_plus=_TAU_PLUS, beta=_BETA,
        negatives=queue, streaming=streaming, chunk_size=chunk_size)[0]

  return {
      "infonce direct": nce(False),
      "infonce streamed": nce(True),
      "hcl direct": hcl(False),
      "hcl streamed": hcl(True),
  }


def _measure(fn, args, repeats: int) -> tuple[float, int]:
  """(median seconds, peak bytes) of value_and_grad w.r.t. the first arg."""
  compiled = jax.jit(jax.value_and_grad(fn)).lower(*args).compile()
  stats = compiled.memory_analysis()
  peak = (stats.temp_size_in_bytes + stats.argument_size_in_bytes
          + stats.output_size_in_bytes)
  jax.block_until_ready(compiled(*args))  # warm-up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times), peak


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes")
  parser.add_argument("--chunk-size", type=int, default=4096)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  if args.quick:
    sizes, dim, chunk = [(32, 256), (64, 1000)], 16, min(args.chunk_size, 128)
  else:
    sizes = [(n, k) for n in (256, 1024) for k in (4096, 65536)]
    dim, chunk = 128, args.chunk_size
  print(f"backend {jax.default_backend()}, d={dim}, chunk_size={chunk},"
        f" t={_TEMPERATURE}, HCL tau_plus={_TAU_PLUS} beta={_BETA};"
        " loss + grad w.r.t. z1 only (MoCo).")
  print("memory = temp + argument + output bytes of the compiled executable"
        " (XLA memory_analysis).")
  header = (f"{'n':>5} {'k':>6}  {'loss':<17} {'time ms':>9} {'peak MiB':>9}"
            f" {'time/direct':>11} {'mem/direct':>10}")
  print(header)
  print("-" * len(header))
  fns = _loss_fns(chunk)
  for n, k in sizes:
    keys = jax.random.split(jax.random.key(n + k), 3)
    data = (jax.random.normal(keys[0], (n, dim)),
            jax.random.normal(keys[1], (n, dim)),
            jax.random.normal(keys[2], (k, dim)))
    direct = {}
    for name, fn in fns.items():
      seconds, peak = _measure(fn, data, args.repeats)
      family, form = name.split()
      if form == "direct":
        direct[family] = (seconds, peak)
      base_t, base_m = direct[family]
      print(f"{n:>5} {k:>6}  {name:<17} {seconds * 1e3:>9.1f}"
            f" {peak / 2**20:>9.1f} {seconds / base_t:>11.2f}"
            f" {peak / base_m:>10.3f}")


if __name__ == "__main__":
  main()
