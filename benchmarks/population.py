r"""What a population member costs against solo runs, everything included.

For each dataset, S seeds of the ablation's SimCLR cell
(configs/ablation_run.py) are launched as a user would, with
`python -m launch.main`:

* solo runs, one process per seed, sharing a persistent compilation cache
  (as the one-run-per-process sweeps did): the first seed compiles, the
  others load the compiled programs; S seeds cost `cold + (S - 1) * warm`,
  both measured;
* a population: the S seeds in one process (`--config.population.seeds`),
  for each execution of `--executions`.

Each figure is the wall time of whole commands (interpreter start, imports,
data loading, compilation, training, checkpoints, the final evaluation on
the full splits) divided by S. The processes run one after another.

  python -m benchmarks.population                      # all three datasets
  python -m benchmarks.population --datasets=uci_hapt --sizes=1,3 --quick
  python -m benchmarks.population --executions=sequential,vmap
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _flags(dataset: str, quick: bool) -> list[str]:
  """The ablation's SimCLR run on `dataset` (configs/ablation_run.py)."""
  flags = [f"--config=configs/ablation_run.py:{dataset},simclr",
           "--config.train.progress=False"]
  if quick:
    flags += ["--config.train.num_steps=3",
              "--config.eval.max_train_examples=512",
              "--config.eval.max_test_examples=256"]
  return flags


def _launch(flags: list[str], workdir: str, env_extra=None) -> float:
  env = dict(os.environ, **(env_extra or {}))
  start = time.perf_counter()
  proc = subprocess.run(
      [sys.executable, "-m", "launch.main", f"--workdir={workdir}", *flags],
      cwd=ROOT, env=env, capture_output=True, text=True)
  wall = time.perf_counter() - start
  if proc.returncode:
    raise RuntimeError(f"launch.main failed:\n{proc.stderr[-3000:]}")
  return wall


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--datasets", default="fashion_mnist,fsdd,uci_hapt")
  parser.add_argument("--sizes", default="1,3,5")
  parser.add_argument("--executions", default="sequential")
  parser.add_argument("--vmap_sizes", default="3",
                      help="sizes run with execution 'vmap' when it is listed"
                      " (on a CPU it is the slow choice)")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--json", default=None, help="also write the rows here")
  args = parser.parse_args()
  sizes = [int(s) for s in args.sizes.split(",")]
  rows = []
  root = tempfile.mkdtemp(prefix="population_bench_")
  try:
    for dataset in args.datasets.split(","):
      flags = _flags(dataset, args.quick)
      cache_env = {"JAX_COMPILATION_CACHE_DIR":
                   os.path.join(root, f"{dataset}_cache"),
                   "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
      cold = _launch(flags, os.path.join(root, f"{dataset}_cold"), cache_env)
      warm = _launch(flags, os.path.join(root, f"{dataset}_warm"), cache_env)
      print(f"{dataset}: solo run {cold:.1f} s compiling, {warm:.1f} s with"
            " the compiled programs cached", flush=True)
      for execution in args.executions.split(","):
        for size in (sizes if execution != "vmap" else
                     [int(s) for s in args.vmap_sizes.split(",")]):
          seeds = ",".join(str(s) for s in range(size))
          wall = _launch(
              flags + [f"--config.population.seeds=({seeds},)",
                       f"--config.population.execution={execution}"],
              os.path.join(root, f"{dataset}_{execution}_{size}"))
          solo = (cold + (size - 1) * warm) / size
          rows.append(dict(dataset=dataset, execution=execution, size=size,
                           solo_cold_s=cold, solo_warm_s=warm,
                           solo_per_run_s=solo, population_s=wall,
                           per_member_s=wall / size))
          print(f"{dataset}: {execution} S={size}: {wall:.1f} s,"
                f" {wall / size:.1f} s a member against {solo:.1f} s a solo"
                f" run ({wall / size / solo:.2f})", flush=True)
  finally:
    shutil.rmtree(root, ignore_errors=True)
  print("\n| dataset | execution | S | solo runs, s each | population, s a"
        " member | member / solo |\n|---|---|---:|---:|---:|---:|")
  for r in rows:
    print(f"| {r['dataset']} | {r['execution']} | {r['size']} |"
          f" {r['solo_per_run_s']:.1f} | {r['per_member_s']:.1f} |"
          f" {r['per_member_s'] / r['solo_per_run_s']:.2f} |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  main()
