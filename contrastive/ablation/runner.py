"""Runs a sweep resumably, recording failures: the seeds of each (dataset,
method) as one population (`contrastive.train.loop.train_population`), the
(dataset, method) cells one after another.

Layout of a sweep's workdir:

  sweep.json                 the sweep config, hardware, session wall times
  runs/<run_id>/status.json  'done', 'failed', 'running' or 'interrupted',
                             wall time, error and traceback of a failure
  runs/<run_id>/config.json  the run's full config
  runs/<run_id>/...          what the trainer writes: checkpoints/,
                             metrics.jsonl, results.json; and
                             similarities.json (end-of-run histogram)
  summary.{csv,json,md}, *.png   written by `aggregate` and `plots`

Re-running a sweep skips the runs marked done (and, unless
`retry_failed=True`, those marked failed); a run left 'running' or
'interrupted' resumes from its own last checkpoint.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import time
import traceback
from typing import Any, Callable, Mapping, Sequence

from contrastive.ablation import grid as grid_lib

# `fn(configs, workdirs) -> [MemberOutcome]`: trains (or scores) the seeds of
# one (dataset, method), each in its own workdir.
TrainFn = Callable[[Sequence[Any], Sequence[str]], list[Any]]
STATUS_FILE = "status.json"
HISTOGRAM_FILE = "similarities.json"
STATUSES = ("done", "failed", "running", "interrupted", "pending")


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """What happened to one run: its `status` (one of STATUSES), `wall_s`
  (seconds of its last attempt: its population's divided by the members),
  `error` (a one-line message when failed)."""

  run: grid_lib.Run
  workdir: str
  status: str
  wall_s: float = 0.0
  error: str | None = None


def one_at_a_time(fn: Callable[[Any, str], Mapping[str, Any]]) -> TrainFn:
  """A `TrainFn` from a trainer of one run, `fn(config, workdir) ->
  results`, run for each config in turn; an error fails that run only."""
  # pylint: disable=g-import-not-at-top
  from contrastive.train.loop import MemberOutcome
  # pylint: enable=g-import-not-at-top

  def train(configs, workdirs):
    outcomes, preempted = [], False
    for config, workdir in zip(configs, workdirs):
      if preempted:   # a SIGTERM stops the rest too, to be resumed later
        outcomes.append(MemberOutcome(workdir, {"preempted": True, "step": 0}))
        continue
      try:
        outcomes.append(MemberOutcome(workdir, dict(fn(config, workdir))))
        preempted = bool(outcomes[-1].results.get("preempted"))
      except Exception as e:  # pylint: disable=broad-except
        outcomes.append(MemberOutcome(workdir, error=e))
    return outcomes
  return train


def _score_input(config, workdir: str) -> dict[str, Any]:
  """An input representation (`config.input`) scored like an encoder."""
  # pylint: disable=g-import-not-at-top
  from contrastive.train import evaluation
  from contrastive.train import experiment
  # pylint: enable=g-import-not-at-top
  exp = experiment.build_experiment(config)
  results = dict(evaluation.input_baseline(exp, config.input), step=0)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  return results


def default_train_fns() -> dict[str, TrainFn]:
  """`{kind: TrainFn}` for the kinds of `grid.KINDS`: contrastive runs as
  one population per (dataset, method), the others one at a time."""
  # Imported here so that reading a sweep's results never pulls in the
  # trainer (and its compilation) just to make a table.
  # pylint: disable=g-import-not-at-top
  from contrastive.ablation import supervised
  from contrastive.train import loop
  # pylint: enable=g-import-not-at-top
  return {"contrastive": loop.train_population,
          "supervised": one_at_a_time(
              supervised.train_and_evaluate_supervised),
          "input": one_at_a_time(_score_input)}


def enable_compilation_cache(directory: str) -> None:
  """Persists XLA programs in `directory`: the seeds of one method compile
  the same programs, so only the first pays for compilation."""
  import jax  # pylint: disable=g-import-not-at-top
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def read_status(run_dir: str) -> dict[str, Any] | None:
  """The run's status.json as a dict, or None if it has none."""
  path = os.path.join(run_dir, STATUS_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _write_json(path: str, value: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=2, default=str)
  os.replace(tmp, path)  # atomic: a killed sweep never leaves half a file


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec="seconds")


def hardware() -> dict[str, Any]:
  """The machine the sweep ran on, for the table's caption."""
  import jax  # pylint: disable=g-import-not-at-top
  return {"platform": platform.platform(), "processor": platform.processor(),
          "cpu_count": os.cpu_count(), "python": platform.python_version(),
          "jax": jax.__version__,
          "devices": [str(d.device_kind) for d in jax.devices()]}


def _write_histogram(run: grid_lib.Run, config, run_dir: str,
                     num_examples: int) -> None:
  """The run's end-of-training similarity histogram, from its checkpoint."""
  # pylint: disable=g-import-not-at-top
  from contrastive.ablation import similarity
  from contrastive.ablation import supervised
  # pylint: enable=g-import-not-at-top
  restore = {"contrastive": similarity.restore_final_state,
             "supervised": supervised.restore_final_state}[run.kind]
  exp, state = restore(config, run_dir)
  similarity.write_histogram(config, run_dir, exp=exp, state=state,
                             num_examples=num_examples)


def _error_fields(error: BaseException) -> dict[str, str]:
  return {"error": f"{type(error).__name__}: {error}",
          "traceback": "".join(traceback.format_exception(error))}


def _run_group(group: Sequence[grid_lib.Run], sweep, workdir: str, train_fns,
               configs_dir, histograms: bool, log) -> list[RunRecord]:
  """Trains the runs of one (dataset, method) together; records each."""
  start, cpu_start = time.perf_counter(), time.process_time()
  dirs = [os.path.join(workdir, "runs", r.run_id) for r in group]
  statuses, configs, members = [], [], []
  for run, run_dir in zip(group, dirs):
    previous = read_status(run_dir) or {}
    status = {"run_id": run.run_id, "method": run.method,
              "dataset": run.dataset, "seed": run.seed, "kind": run.kind,
              "status": "running", "started": _now(),
              "attempts": int(previous.get("attempts", 0)) + 1,
              "population_size": len(group)}
    statuses.append(status)
    _write_json(os.path.join(run_dir, STATUS_FILE), status)
    try:
      config = grid_lib.run_config(run, sweep, configs_dir)
      _write_json(os.path.join(run_dir, "config.json"), config.to_dict())
      configs.append(config)
      members.append(len(statuses) - 1)
    except Exception as e:  # pylint: disable=broad-except
      status.update(status="failed", **_error_fields(e))
  if configs:
    try:
      outcomes = train_fns[group[0].kind](configs,
                                          [dirs[i] for i in members])
    except Exception as e:  # pylint: disable=broad-except
      # Any error of the population as a whole (bad config, ...) fails its
      # runs and the sweep goes on; KeyboardInterrupt and SystemExit still
      # stop it.
      for i in members:
        statuses[i].update(status="failed", **_error_fields(e))
    else:
      for i, outcome in zip(members, outcomes):
        if outcome.error is not None:
          statuses[i].update(status="failed", **_error_fields(outcome.error))
        elif outcome.results.get("preempted"):
          statuses[i]["status"] = "interrupted"
        else:
          statuses[i]["status"] = "done"
  wall = time.perf_counter() - start
  # CPU seconds of all threads: with other jobs on the machine, a fairer
  # measure of a run's cost than its wall time.
  cpu = time.process_time() - cpu_start
  records = []
  for run, run_dir, status in zip(group, dirs, statuses):
    # Input representations have no encoder, hence no view similarities.
    if status["status"] == "done" and histograms and run.kind != "input":
      _write_histogram(run, grid_lib.run_config(run, sweep, configs_dir),
                       run_dir, int(sweep.get("histogram_examples", 512)))
    if status["status"] == "failed":
      log(f"[ablate] {run.run_id} FAILED: {status['error']}")
    status.update(wall_s=wall / len(group), cpu_s=cpu / len(group),
                  population_wall_s=wall, finished=_now())
    _write_json(os.path.join(run_dir, STATUS_FILE), status)
    records.append(RunRecord(run, run_dir, status["status"], status["wall_s"],
                             status.get("error")))
  return records


def run_sweep(
    sweep: Any,
    workdir: str,
    *,
    train_fns: Mapping[str, TrainFn] | None = None,
    configs_dir: str | None = None,
    retry_failed: bool = False,
    histograms: bool = True,
    log: Callable[[str], None] = print,
) -> list[RunRecord]:
  """Runs every run of `sweep` in `workdir/runs/<run_id>`.

  Args:
    sweep: a sweep config (`configs/ablation.py`).
    workdir: the sweep's folder; created if needed.
    train_fns: `{kind: fn(configs, run_dirs) -> [MemberOutcome]}`, called
      with the unfinished seeds of one (dataset, method); defaults to
      `default_train_fns()` (tests pass fakes, `one_at_a_time(fake)`, to
      check the bookkeeping).
    configs_dir: where the method configs live (default: the repo's configs/).
    retry_failed: re-run the runs a previous session recorded as failed.
    histograms: write each run's end-of-training similarity histogram.
    log: progress lines go here.

  Returns:
    One `RunRecord` per run of the grid, in grid order (skipped runs carry
    their recorded status). A run interrupted by SIGTERM stops the sweep;
    the records of the runs not reached are 'pending'.

  Example:
    >>> records = run_sweep(configs.ablation.get_config('smoke'), '/tmp/abl')
    >>> [r.status for r in records]
  """
  runs = grid_lib.expand(sweep)
  train_fns = dict(train_fns or default_train_fns())
  os.makedirs(os.path.join(workdir, "runs"), exist_ok=True)
  meta_path = os.path.join(workdir, "sweep.json")
  meta = {}
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      meta = json.load(f)
  session = {"started": _now(), "hardware": hardware()}
  meta.setdefault("sessions", []).append(session)
  meta["sweep"] = sweep.to_dict() if hasattr(sweep, "to_dict") else dict(sweep)
  meta["run_ids"] = [r.run_id for r in runs]
  _write_json(meta_path, meta)
  session_start = time.perf_counter()
  records: dict[str, RunRecord] = {}
  stopped = False
  for group in grid_lib.groups(runs):
    todo = []
    for run in group:
      run_dir = os.path.join(workdir, "runs", run.run_id)
      os.makedirs(run_dir, exist_ok=True)
      previous = read_status(run_dir) or {}
      skip = previous.get("status") == "done" or (
          previous.get("status") == "failed" and not retry_failed)
      if stopped or skip:
        status = "pending" if stopped else previous["status"]
        records[run.run_id] = RunRecord(
            run, run_dir, status, float(previous.get("wall_s", 0.0)),
            previous.get("error"))
      else:
        todo.append(run)
    if not todo:
      continue
    log(f"[ablate] {todo[0].dataset} / {todo[0].method}: seeds"
        f" {', '.join(str(r.seed) for r in todo)}"
        f" ({len(records) + 1}-{len(records) + len(todo)} of {len(runs)})")
    for record in _run_group(todo, sweep, workdir, train_fns, configs_dir,
                             histograms, log):
      log(f"[ablate] {record.run.run_id}: {record.status}"
          f" ({record.wall_s:.1f} s)")
      records[record.run.run_id] = record
    stopped = any(records[r.run_id].status == "interrupted" for r in todo)
  session["wall_s"] = time.perf_counter() - session_start
  session["finished"] = _now()
  _write_json(meta_path, meta)
  return [records[r.run_id] for r in runs]
