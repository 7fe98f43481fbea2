"""Is input the bottleneck? Pipeline examples/s against a train step's.

Run from the repository root:

    python -m benchmarks.input_pipeline            # the three default datasets
    python -m benchmarks.input_pipeline --quick    # fewer repeats, batch 64
    python -m benchmarks.input_pipeline --datasets fsdd --repeats 10

For each modality's default dataset (fashion_mnist, fsdd, uci_hapt, read from
../shared/data) and the 'small' size of configs/simclr.py, built through the
experiment API exactly as `launch.main` builds it, it measures:

  host      `BatchIterator` batches (read, gather, on the host), examples/s;
  augment   the modality's standard recipe making two views, jit-compiled
            `make_views` on the device (a batch already on the device);
  pipeline  both in sequence, as a loop would run them: next(iterator),
            transfer, two views, wait;
  step      one full train step (which itself augments, on device, from the
            state's rng) at the config's global batch, examples/s.

and the ratios pipeline/step (the issue's target: >= 3) and host/step.

    python -m benchmarks.input_pipeline --dataset=synthetic_imagenet

measures instead the host side of ImageNet-sized training (issue 15): the
image folder written by `benchmarks/make_synthetic_imagenet.py` (made under
/tmp on first use), two 224 x 224 views of each image cropped from the whole
image (SimCLR's scale 0.08-1, the smallest crops, which gain least from
reduced-scale decoding), in this process (images per CPU second: the
per-core figure) and in 1 and 2 grain worker processes (images/s), and the
same files through torchvision's ImageFolder + RandomResizedCrop DataLoader
(`benchmarks/torchvision_loader.py`, run in an interpreter that has torch:
`--torch_python`, default /usr/bin/python3; the row is skipped, saying how
to install it, when there is none), the two alternating, so that both see
the same load. Because
augmentation runs inside the jitted step, what the step really waits for is
the host column; the augment column says what share of the step the views
cost. Each figure is the median of `--repeats` timed runs after a warm-up
(and compilation); the load average printed beside it says how busy the
machine was.
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from typing import Any, Callable

import numpy as np

# jax, the configs and the trainer are imported where used, so that the
# synthetic_imagenet run (and its worker processes, which import this
# module) needs only the data package.

DATASETS = ("fashion_mnist", "fsdd", "uci_hapt")
TARGET_RATIO = 3.0


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1
                   ) -> float:
  """Median wall time of `fn()` (which must block until its work is done)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def measure(dataset: str, *, repeats: int, batch_size: int | None
            ) -> dict[str, float]:
  """Examples/s of host reading, augmentation, both, and one train step."""
  import jax  # pylint: disable=g-import-not-at-top
  from configs import simclr  # pylint: disable=g-import-not-at-top
  from contrastive.augment import make_views  # pylint: disable=g-import-not-at-top
  from contrastive.train import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
  from contrastive.train import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  config = simclr.get_config(f"{dataset},small")
  if batch_size:
    config.train.batch_size = batch_size
  exp = experiment_lib.build_experiment(config)
  b = exp.batch_size
  iterator = exp.train_iterator()
  num_views = exp.deps.num_views

  host = median_seconds(lambda: next(iterator), repeats)

  views_fn = jax.jit(functools.partial(
      make_views, augment=exp.deps.augment, num_views=num_views))
  rng = jax.random.PRNGKey(0)
  x = jax.device_put(next(iterator)["x"])
  augment = median_seconds(
      lambda: views_fn(rng, x).block_until_ready(), repeats)

  def pipeline():
    batch = next(iterator)
    views_fn(rng, jax.device_put(batch["x"])).block_until_ready()
  both = median_seconds(pipeline, repeats)

  state, shardings = experiment_lib.init_state(exp)
  step_fn = experiment_lib.compile_train_step(exp, shardings)
  batch = mesh_lib.global_batch(next(iterator), exp.mesh)
  holder = {"state": state}

  def step():
    # The state is donated: each step consumes the previous one.
    holder["state"], metrics = step_fn(holder["state"], batch)
    jax.block_until_ready(metrics)
  step_s = median_seconds(step, repeats, warmup=2)  # 1st compiles
  return {"batch": b, "host": b / host, "augment": b / augment,
          "pipeline": b / both, "step": b / step_s,
          "model": config.model.name, "width": config.model.width,
          "augment_name": config.augment.name,
          "shape": tuple(np.shape(x)[1:])}


SYNTHETIC_ROOT = "/tmp/synthetic_imagenet"
TORCH_HINT = ("no torch/torchvision: `apt-get install -y python3-torchvision`"
              " (Debian, into /usr/bin/python3) or `python3 -m venv /tmp/tv &&"
              " /tmp/tv/bin/pip install torch torchvision` and"
              " --torch_python=/tmp/tv/bin/python")


def _synthetic_root(args) -> str:
  from benchmarks import make_synthetic_imagenet  # pylint: disable=g-import-not-at-top
  root = args.data_dir or SYNTHETIC_ROOT
  if not os.path.isdir(os.path.join(root, "train")):
    print(f"writing {args.images} synthetic images to {root} ...", flush=True)
    make_synthetic_imagenet.write_folder(root, train=args.images, val=0,
                                         classes=100)
  return root


def _ours(root: str, workers: int, args) -> dict[str, float]:
  from contrastive.data import host_crops  # pylint: disable=g-import-not-at-top
  from contrastive.data import image_folder  # pylint: disable=g-import-not-at-top
  from contrastive.data import iterator as iterator_lib  # pylint: disable=g-import-not-at-top
  from contrastive.data import prefetch  # pylint: disable=g-import-not-at-top
  ds = image_folder.ImageFolderDataset(root, "train", image_size=224)
  ds = ds.with_host_crops(host_crops.CropSpec(
      224, scale=tuple(args.scale), num_views=2, draft=not args.no_draft))
  base_it = iterator_lib.BatchIterator(ds, args.image_batch, seed=0)
  it = prefetch.PrefetchIterator(base_it, num_workers=workers,
                                 buffer_size=1)
  try:
    for _ in range(args.warmup_batches):
      next(it)
    start, cpu = time.perf_counter(), time.process_time()
    arrivals = []
    for _ in range(args.batches):
      batch = next(it)
      arrivals.append(time.perf_counter())
    cpu = time.process_time() - cpu
  finally:
    it.close()
  assert batch["x"].shape[1:] == (2, 224, 224, 3), batch["x"].shape
  return {"images_per_s": steady_rate(start, arrivals, args.image_batch,
                                      workers),
          "images_per_cpu_s": (args.batches * args.image_batch / cpu
                               if workers == 0 else None)}


def steady_rate(start: float, arrivals: list[float], batch: int,
                workers: int) -> float:
  """Images/s. With workers, over the second half of the batches only: the
  workers fill their buffers during the warm-up, and those batches arrive
  at once; by the second half the loop waits for batches being made."""
  if workers == 0:
    return len(arrivals) * batch / (arrivals[-1] - start)
  half = len(arrivals) // 2
  return (len(arrivals) - 1 - half) * batch / (arrivals[-1] - arrivals[half])


def _torch(root: str, workers: int, args) -> dict[str, float] | str:
  import json  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  python = args.torch_python
  if not (python and os.path.exists(python)):
    return TORCH_HINT
  script = os.path.join(os.path.dirname(__file__), "torchvision_loader.py")
  result = subprocess.run(
      [python, script, f"--root={os.path.join(root, 'train')}",
       f"--workers={workers}", f"--batch_size={args.image_batch}",
       f"--batches={args.batches}", f"--warmup={args.warmup_batches}",
       f"--scale={args.scale[0]},{args.scale[1]}"],
      capture_output=True, text=True, check=False)
  if result.returncode:
    if "No module named" in result.stderr:
      return TORCH_HINT
    raise RuntimeError(f"torchvision_loader failed:\n{result.stderr}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def image_benchmark(args) -> None:
  """Host crops of ImageNet-sized JPEGs against torchvision's loader."""
  root = _synthetic_root(args)
  workers = [int(w) for w in args.workers.split(",")]
  rows = {}
  for repeat in range(args.repeats):
    for w in workers:
      for name, fn in (("ours", _ours), ("torchvision", _torch)):
        load = os.getloadavg()[0]
        r = fn(root, w, args)
        rows.setdefault((name, w), []).append((r, load))
        if isinstance(r, str):
          continue
        print(f"  repeat {repeat} {name:<11} workers {w}:"
              f" {r['images_per_s']:7.0f} images/s  load {load:.1f}",
              flush=True)
  print(f"\nsynthetic_imagenet ({root}), two 224x224 views per image,"
        f" scale {tuple(args.scale)}, batch {args.image_batch}, median of"
        f" {args.repeats}; {os.cpu_count()} cores; images/s (wall) and, in"
        " this process (workers 0), images per CPU second")
  header = (f"{'workers':>7} {'ours img/s':>11} {'torchvision':>12}"
            f" {'ratio':>6} {'ours /cpu-s':>12} {'tv /cpu-s':>10}"
            f" {'cpu ratio':>9}  load")
  print(header)
  print("-" * len(header))
  for w in workers:
    ours = [r for r, _ in rows[("ours", w)]]
    theirs = [r for r, _ in rows[("torchvision", w)]]
    loads = [l for _, l in rows[("ours", w)] + rows[("torchvision", w)]]
    o = statistics.median(r["images_per_s"] for r in ours)
    o_cpu = (statistics.median(r["images_per_cpu_s"] for r in ours)
             if w == 0 else None)
    if isinstance(theirs[0], str):
      t = t_cpu = None
    else:
      t = statistics.median(r["images_per_s"] for r in theirs)
      t_cpu = (statistics.median(r["images_per_cpu_s"] for r in theirs)
               if w == 0 else None)
    fmt = lambda v, n: f"{v:>{n}.0f}" if v else f"{'-':>{n}}"
    ratio = f"{o / t:>6.2f}" if t else f"{'-':>6}"
    cpu_ratio = f"{o_cpu / t_cpu:>9.2f}" if o_cpu and t_cpu else f"{'-':>9}"
    print(f"{w:>7} {fmt(o, 11)} {fmt(t, 12)} {ratio} {fmt(o_cpu, 12)}"
          f" {fmt(t_cpu, 10)} {cpu_ratio}  {min(loads):.1f}-{max(loads):.1f}")
  if isinstance(rows[("torchvision", workers[0])][0][0], str):
    print(f"torchvision row skipped: {TORCH_HINT}.")
  print("target: >= 400 images per CPU second (two views each); ratio:"
        " ours / torchvision, measured alternately in the same run.")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default=None,
                      help="synthetic_imagenet: the ImageNet-sized host"
                      " pipeline against torchvision (see the docstring)")
  parser.add_argument("--data_dir", default=None,
                      help=f"synthetic_imagenet's folder ({SYNTHETIC_ROOT})")
  parser.add_argument("--images", type=int, default=3000,
                      help="images to write when the folder is missing")
  parser.add_argument("--workers", default="0,1,2",
                      help="synthetic_imagenet: worker processes to try")
  parser.add_argument("--image_batch", type=int, default=64)
  parser.add_argument("--batches", type=int, default=20,
                      help="synthetic_imagenet: timed batches per figure")
  parser.add_argument("--warmup_batches", type=int, default=3)
  parser.add_argument("--scale", type=lambda v: tuple(
      float(x) for x in v.split(",")), default=(0.08, 1.0))
  parser.add_argument("--no_draft", action="store_true",
                      help="decode every JPEG at full scale")
  parser.add_argument("--torch_python", default="/usr/bin/python3",
                      help="an interpreter with torch and torchvision")
  parser.add_argument("--quick", action="store_true",
                      help="batch 64 and 3 repeats: a smoke run")
  parser.add_argument("--datasets", default=",".join(DATASETS),
                      help="comma-separated, from " + ", ".join(DATASETS))
  parser.add_argument("--repeats", type=int, default=None,
                      help="timed runs per figure (default 5, quick 3)")
  parser.add_argument("--batch_size", type=int, default=None,
                      help="global batch (default: the small config's, 256)")
  args = parser.parse_args()
  if args.dataset == "synthetic_imagenet":
    args.repeats = args.repeats or 3
    image_benchmark(args)
    return
  if args.dataset is not None:
    raise ValueError(f"--dataset takes synthetic_imagenet, got"
                     f" {args.dataset!r}; use --datasets for the others.")
  datasets = [d for d in args.datasets.split(",") if d]
  unknown = sorted(set(datasets) - set(DATASETS))
  if unknown:
    raise ValueError(f"unknown datasets {unknown}; valid: {DATASETS}.")
  import jax  # pylint: disable=g-import-not-at-top
  repeats = args.repeats or (3 if args.quick else 5)
  batch_size = args.batch_size or (64 if args.quick else None)

  print(f"backend {jax.default_backend()}, {jax.device_count()} device(s),"
        f" {os.cpu_count()} CPU cores; configs/simclr.py:<dataset>,small;"
        f" median of {repeats}.")
  header = (f"{'dataset':<14} {'encoder':<20} {'batch':>5} {'host':>9}"
            f" {'augment':>9} {'pipeline':>9} {'step':>8} {'pipe/step':>9}"
            f" {'host/step':>9}  load")
  print("examples/s (two views per example)")
  print(header)
  print("-" * len(header))
  for dataset in datasets:
    r = measure(dataset, repeats=repeats, batch_size=batch_size)
    load = os.getloadavg()[0]
    encoder = f"{r['model']} w{r['width']}"
    ratio = r["pipeline"] / r["step"]
    flag = "" if ratio >= TARGET_RATIO else " (<3)"
    print(f"{dataset:<14} {encoder:<20} {r['batch']:>5} {r['host']:>9.0f}"
          f" {r['augment']:>9.0f} {r['pipeline']:>9.0f} {r['step']:>8.0f}"
          f" {ratio:>9.1f} {r['host'] / r['step']:>9.1f}  {load:.1f}{flag}")
  print("host: BatchIterator on the host; augment: jitted make_views on the"
        " device; pipeline: both in sequence; step: full SimCLR train step"
        " (augmentation included). load: 1-min load average after the row.")


if __name__ == "__main__":
  main()
