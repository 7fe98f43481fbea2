r"""Runs an ablation sweep and writes its table and plots.

  python -m launch.ablate --config=configs/ablation.py:default \
      --workdir=/tmp/ablation

runs every (dataset, method, seed) of the grid one after another, each in
`<workdir>/runs/<dataset>__<method>__seed<k>`, then writes
`<workdir>/summary.{md,csv,json}` and `accuracy.png`, `curves.png`,
`similarities.png`. Re-running the same command resumes: finished runs are
skipped, an interrupted run continues from its checkpoint, failed runs stay
failed unless `--retry_failed`. `--report_only` rewrites the table and plots
from what is on disk. Any field of the sweep can be overridden, e.g.
`--config.seeds="(0,)"` or `--config.datasets="('uci_hapt',)"`;
`--list_runs` prints the grid without running it.
"""
from __future__ import annotations

import os
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Sweep config, e.g. configs/ablation.py:default.",
    lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "The sweep's folder.")
_RETRY_FAILED = flags.DEFINE_bool(
    "retry_failed", False, "Run again the runs recorded as failed.")
_REPORT_ONLY = flags.DEFINE_bool(
    "report_only", False, "Only rewrite the table and plots from disk.")
_LIST_RUNS = flags.DEFINE_bool(
    "list_runs", False, "Print the grid's runs and exit without running.")
_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", None,
    "Persistent XLA cache (default <workdir>/xla_cache; '' disables it).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  # Imported after flag parsing so that --help is instant.
  # pylint: disable=g-import-not-at-top
  from contrastive.ablation import grid
  from contrastive.ablation import report
  from contrastive.ablation import runner
  # pylint: enable=g-import-not-at-top
  if _LIST_RUNS.value:
    runs = grid.expand(_CONFIG.value)
    for run in runs:
      print(run.run_id)
    print(f"{len(runs)} runs")
    return
  workdir = _WORKDIR.value
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  if not _REPORT_ONLY.value:
    cache = _COMPILATION_CACHE.value
    if cache is None:
      cache = os.path.join(workdir, "xla_cache")
    if cache:
      runner.enable_compilation_cache(cache)
    start = time.perf_counter()
    records = runner.run_sweep(
        _CONFIG.value, workdir, retry_failed=_RETRY_FAILED.value,
        log=lambda line: print(line, flush=True))
    counts = {s: sum(r.status == s for r in records) for s in runner.STATUSES}
    logging.info("sweep: %s in %.0f s", counts, time.perf_counter() - start)
  result = report.write_report(workdir)
  with open(result["paths"]["md"]) as f:
    print(f.read())
  for name, path in sorted(result["paths"].items()):
    print(f"{name}: {path}")


if __name__ == "__main__":
  app.run(main)
