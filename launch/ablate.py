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

Several workers. Any number of processes, on one machine or on several
sharing the workdir's filesystem, may run the same command at once: each
(dataset, method) group (its seeds train as one population) is claimed by
one worker through a file under `<workdir>/claims/` (contrastive/ablation/
claims.py), whose heartbeat the worker refreshes while it runs the group.
A killed worker's claim is taken over by another worker, which resumes the
group from its checkpoints: at once on the same machine (its pid is gone),
else when the heartbeat is older than `--claim_timeout` (5 min; the
machines' clocks must agree to well within it). A worker with nothing left
to claim waits for the groups others are running, so that it can take over
any of them whose worker dies, and exits when every run is finished; the
first worker to find the sweep finished writes the table, and
`--report_only` rewrites it at any time. E.g. four local workers:

  for i in 0 1 2 3; do
    python -m launch.ablate --config=configs/ablation.py:default \
        --workdir=/tmp/ablation --worker_name=w$i > /tmp/ablation_w$i.log &
  done; wait

or a SLURM array, one worker per task, logs named by `<job>_<task>`:

  sbatch --array=0-7 launch/ablate_array.sh configs/ablation.py:default \
      /shared/ablation

Do not run workers of this version beside a sweep started by an earlier
one (without claims) on the same workdir: that one claims nothing.
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
    "retry_failed", False,
    "Run again the runs recorded as failed before this worker started (so"
    " that workers started together retry each failed run once).")
_REPORT_ONLY = flags.DEFINE_bool(
    "report_only", False, "Only rewrite the table and plots from disk.")
_LIST_RUNS = flags.DEFINE_bool(
    "list_runs", False, "Print the grid's runs and exit without running.")
_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", None,
    "Persistent XLA cache (default <workdir>/xla_cache; '' disables it).")
_WORKER_NAME = flags.DEFINE_string(
    "worker_name", None,
    "This worker's name in logs, claims and run statuses (default: SLURM's"
    " <job>_<task> in an array job, else <host>-<pid>).")
_CLAIM_TIMEOUT = flags.DEFINE_float(
    "claim_timeout", 300.0,
    "Seconds without a heartbeat after which a worker's claim on a group is"
    " taken over by another worker.")
_CLAIM_POLL = flags.DEFINE_float(
    "claim_poll", None,
    "Seconds between looks at the groups other workers hold (default: a"
    " quarter of --claim_timeout, at most 10 s).")
flags.mark_flags_as_required(["config", "workdir"])
flags.register_validator("claim_timeout", lambda value: value > 0,
                         "--claim_timeout must be positive (seconds).")


def _write_report(workdir, board, name, force):
  """Writes the report under a claim (two workers finishing together must
  not interleave their writes), unless `force` is off and a worker that
  finished later than every run already wrote it. Returns its Markdown
  path."""
  # pylint: disable=g-import-not-at-top
  from contrastive.ablation import report
  # pylint: enable=g-import-not-at-top
  if not os.path.exists(os.path.join(workdir, "sweep.json")):
    report.write_report(workdir)   # raises: not a sweep folder, run it first
  with board().acquire("_report"):
    if not force and report.is_current(workdir):
      print(f"[ablate {name}] the table is already written (by another"
            " worker).", flush=True)
      return os.path.join(workdir, "summary.md"), None
    result = report.write_report(workdir)
  return result["paths"]["md"], result["paths"]


def main(argv):
  del argv
  # Imported after flag parsing so that --help is instant.
  # pylint: disable=g-import-not-at-top
  from contrastive.ablation import grid
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
  # pylint: disable=g-import-not-at-top
  from contrastive.ablation import claims
  # pylint: enable=g-import-not-at-top
  name = _WORKER_NAME.value or claims.worker_name()
  board = lambda: claims.Claims(os.path.join(workdir, runner.CLAIMS_DIR),
                                worker=name, timeout_s=_CLAIM_TIMEOUT.value)
  if not _REPORT_ONLY.value:
    cache = _COMPILATION_CACHE.value
    if cache is None:
      cache = os.path.join(workdir, "xla_cache")
    if cache:
      runner.enable_compilation_cache(cache)
    start = time.perf_counter()
    records = runner.run_sweep(
        _CONFIG.value, workdir, retry_failed=_RETRY_FAILED.value,
        log=lambda line: print(line, flush=True), worker=name,
        claim_timeout_s=_CLAIM_TIMEOUT.value, poll_s=_CLAIM_POLL.value)
    counts = {s: sum(r.status == s for r in records) for s in runner.STATUSES}
    logging.info("sweep: %s in %.0f s", counts, time.perf_counter() - start)
    unfinished = sum(r.status not in runner.FINISHED for r in records)
    if unfinished:
      # Interrupted (SIGTERM): the session that finishes writes the table.
      print(f"[ablate {name}] {unfinished} of {len(records)} runs not"
            " finished; the same command resumes them, --report_only"
            " writes the table of those done.", flush=True)
      return
  md, paths = _write_report(workdir, board, name, force=_REPORT_ONLY.value)
  with open(md) as f:
    print(f.read())
  for key, path in sorted((paths or {}).items()):
    print(f"{key}: {path}")


if __name__ == "__main__":
  app.run(main)
