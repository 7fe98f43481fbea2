"""Runs a sweep resumably, recording failures: the seeds of each (dataset,
method) as one population (`contrastive.train.loop.train_population`), the
(dataset, method) groups one after another; and, from one shared workdir,
on several workers at once.

Layout of a sweep's workdir::

  sweep.json                 the sweep config, hardware, sessions (one per
                             worker invocation: worker, wall times)
  runs/<run_id>/status.json  'done', 'failed', 'running' or 'interrupted',
                             wall time, error and traceback of a failure,
                             `history`: one entry per attempt (worker,
                             start, end, outcome)
  runs/<run_id>/config.json  the run's full config
  runs/<run_id>/...          what the trainer writes: checkpoints/,
                             metrics.jsonl, results.json; and
                             similarities.json (end-of-run histogram)
  claims/<dataset>__<method>/  which worker runs the group (`claims`)
  summary.{csv,json,md}, *.png   written by `aggregate` and `plots`

Re-running a sweep skips the runs marked done (and, unless
`retry_failed=True`, those marked failed); a run left 'running' or
'interrupted' resumes from its own last checkpoint.

Several workers. Any number of `run_sweep` calls (processes, machines) may
share one workdir: before running a (dataset, method) group a worker claims
it (`claims.Claims`: a file created atomically, with a heartbeat), so each
group runs on exactly one worker; a dead worker's claim goes stale (at once
on the same machine, else after `claim_timeout_s`) and another worker takes
it over, resuming from the runs' checkpoints. The unit of claiming is the
group, not the run, because the seeds of a group train as one population
in one process: they share its compiled programs, data pipeline and
evaluation, and splitting them across workers would pay for those once per
seed. A worker that finds the remaining groups held by others waits for
them (polling every `poll_s`) rather than exiting, so that a group whose
worker dies is always finished by a survivor; it returns when every run is
finished.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import time
import traceback
import uuid
from typing import Any, Callable, Mapping, Sequence

from contrastive.ablation import claims as claims_lib
from contrastive.ablation import grid as grid_lib

# `fn(configs, workdirs) -> [MemberOutcome]`: trains (or scores) the seeds of
# one (dataset, method), each in its own workdir.
TrainFn = Callable[[Sequence[Any], Sequence[str]], list[Any]]
STATUS_FILE = "status.json"
HISTOGRAM_FILE = "similarities.json"
STATUSES = ("done", "failed", "running", "interrupted", "pending")
FINISHED = ("done", "failed")
CLAIMS_DIR = "claims"
# Claim of sweep.json's read-modify-write (sessions appended by workers).
SWEEP_JSON_LOCK = "_sweep_json"


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


def _finished_at(status: Mapping[str, Any]) -> float | None:
  """When the status was last finished, in seconds since the epoch."""
  if status.get("finished_unix") is not None:
    return float(status["finished_unix"])
  if status.get("finished"):   # statuses written before finished_unix
    return datetime.datetime.fromisoformat(status["finished"]).timestamp()
  return None


def needs_run(status: Mapping[str, Any] | None, *, retry_failed: bool,
              since: float) -> bool:
  """Whether a run with this recorded status is to be (re)run.

  Done runs never are. Failed runs are only with `retry_failed`, and only
  if they failed before `since` (the worker's start): with several workers
  retrying, a run that one of them retried and saw fail again is not
  retried by the others.
  """
  state = (status or {}).get("status")
  if state == "done":
    return False
  if state == "failed":
    finished = _finished_at(status)
    return retry_failed and (finished is None or finished < since)
  return True   # never started, 'running' (its worker died), 'interrupted'


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
  hist = similarity.run_histogram(config, run_dir, exp=exp, state=state,
                                  num_examples=num_examples)
  _write_json(os.path.join(run_dir, HISTOGRAM_FILE), hist)


def _error_fields(error: BaseException) -> dict[str, str]:
  return {"error": f"{type(error).__name__}: {error}",
          "traceback": "".join(traceback.format_exception(error))}


def _run_group(group: Sequence[grid_lib.Run], sweep, workdir: str, train_fns,
               configs_dir, histograms: bool, log, worker: str
               ) -> list[RunRecord]:
  """Trains the runs of one (dataset, method) together; records each, with
  the attempt in its status's `history` (who ran it, when, the outcome)."""
  start, cpu_start = time.perf_counter(), time.process_time()
  dirs = [os.path.join(workdir, "runs", r.run_id) for r in group]
  statuses, configs, members, attempts = [], [], [], []
  for run, run_dir in zip(group, dirs):
    previous = read_status(run_dir) or {}
    attempt = {"worker": worker, "started": _now(), "status": "running"}
    status = {"run_id": run.run_id, "method": run.method,
              "dataset": run.dataset, "seed": run.seed, "kind": run.kind,
              "status": "running", "started": attempt["started"],
              "attempts": int(previous.get("attempts", 0)) + 1,
              "population_size": len(group), "worker": worker,
              "history": [*previous.get("history", []), attempt]}
    statuses.append(status)
    attempts.append(attempt)
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
  for run, run_dir, status, attempt in zip(group, dirs, statuses, attempts):
    # Input representations have no encoder, hence no view similarities.
    if status["status"] == "done" and histograms and run.kind != "input":
      _write_histogram(run, grid_lib.run_config(run, sweep, configs_dir),
                       run_dir, int(sweep.get("histogram_examples", 512)))
    if status["status"] == "failed":
      log(f"[ablate {worker}] {run.run_id} FAILED: {status['error']}")
    status.update(wall_s=wall / len(group), cpu_s=cpu / len(group),
                  population_wall_s=wall, finished=_now(),
                  finished_unix=time.time())
    attempt.update(status=status["status"], finished=status["finished"])
    _write_json(os.path.join(run_dir, STATUS_FILE), status)
    records.append(RunRecord(run, run_dir, status["status"], status["wall_s"],
                             status.get("error")))
  return records


def group_key(group: Sequence[grid_lib.Run]) -> str:
  """The claim key of a (dataset, method) group: `<dataset>__<method>`."""
  return f"{group[0].dataset}__{group[0].method}"


def _update_meta(workdir: str, board: claims_lib.Claims,
                 update: Callable[[dict[str, Any]], None]) -> None:
  """Read-modify-writes sweep.json under a claim: workers starting or
  finishing together would otherwise drop each other's sessions."""
  path = os.path.join(workdir, "sweep.json")
  with board.acquire(SWEEP_JSON_LOCK, poll_s=0.05):
    meta = {}
    if os.path.exists(path):
      with open(path) as f:
        meta = json.load(f)
    update(meta)
    _write_json(path, meta)


def run_sweep(
    sweep: Any,
    workdir: str,
    *,
    train_fns: Mapping[str, TrainFn] | None = None,
    configs_dir: str | None = None,
    retry_failed: bool = False,
    histograms: bool = True,
    log: Callable[[str], None] = print,
    worker: str | None = None,
    claim_timeout_s: float = claims_lib.DEFAULT_TIMEOUT_S,
    poll_s: float | None = None,
) -> list[RunRecord]:
  """Runs every run of `sweep` in `workdir/runs/<run_id>`, alone or as one
  of several workers sharing `workdir`.

  Args:
    sweep: a sweep config (`configs/ablation.py`).
    workdir: the sweep's folder; created if needed.
    train_fns: `{kind: fn(configs, run_dirs) -> [MemberOutcome]}`, called
      with the unfinished seeds of one (dataset, method); defaults to
      `default_train_fns()` (tests pass fakes, `one_at_a_time(fake)`, to
      check the bookkeeping).
    configs_dir: where the method configs live (default: the repo's configs/).
    retry_failed: re-run the runs recorded as failed before this call
      (so that workers started together retry each failed run once).
    histograms: write each run's end-of-training similarity histogram.
    log: progress lines go here.
    worker: this worker's name in logs, claims and statuses (default
      `claims.worker_name()`: SLURM's `<job>_<task>`, or `<host>-<pid>`).
    claim_timeout_s: a group's claim whose heartbeat is older than this is
      taken over (its worker is presumed dead); see `claims`.
    poll_s: how often to look again while the unfinished groups are held by
      other workers (default: a quarter of the timeout, at most 10 s).

  Returns:
    One `RunRecord` per run of the grid, in grid order (runs of other
    workers carry their recorded status). Returns when every run is
    finished (done or failed), or when a run of this worker is interrupted
    by SIGTERM: then the unfinished runs are 'pending'.

  Example:
    >>> records = run_sweep(configs.ablation.get_config('smoke'), '/tmp/abl')
    >>> [r.status for r in records]
  """
  runs = grid_lib.expand(sweep)
  train_fns = dict(train_fns or default_train_fns())
  poll_s = float(poll_s if poll_s is not None else
                 min(claim_timeout_s / 4, 10.0))
  os.makedirs(os.path.join(workdir, "runs"), exist_ok=True)

  def lost(claim):
    log(f"[ablate {board.worker}] WARNING: the claim of {claim.key} was"
        " taken over by another worker (this one's heartbeat was older than"
        f" {claim_timeout_s:.0f} s): its runs may be run twice.")
  board = claims_lib.Claims(os.path.join(workdir, CLAIMS_DIR), worker=worker,
                            timeout_s=claim_timeout_s, on_lost=lost)
  name = board.worker
  since = time.time()   # failures from before it are retried
  session = {"started": _now(), "hardware": hardware(), "worker": name,
             "id": uuid.uuid4().hex}

  def start(meta):
    meta.setdefault("sessions", []).append(session)
    meta["sweep"] = (sweep.to_dict() if hasattr(sweep, "to_dict")
                     else dict(sweep))
    meta["run_ids"] = [r.run_id for r in runs]
  _update_meta(workdir, board, start)
  session_start = time.perf_counter()
  index = {r.run_id: i for i, r in enumerate(runs)}
  run_dir = lambda run: os.path.join(workdir, "runs", run.run_id)

  def todo(group):
    return [r for r in group if needs_run(read_status(run_dir(r)),
                                          retry_failed=retry_failed,
                                          since=since)]
  ours: dict[str, RunRecord] = {}
  stopped, waited_for = False, None
  while not stopped:
    held = []   # unfinished groups claimed by live workers
    for group in grid_lib.groups(runs):
      if not todo(group):
        continue
      claim = board.try_acquire(group_key(group))
      if claim is None:
        held.append(group_key(group))
        continue
      with claim:
        # Read again under the claim: another worker may have finished the
        # group between our first look and our claim.
        group_todo = todo(group)
        if not group_todo:
          continue
        for run in group_todo:
          os.makedirs(run_dir(run), exist_ok=True)
        log(f"[ablate {name}] {group_todo[0].dataset} /"
            f" {group_todo[0].method}: seeds"
            f" {', '.join(str(r.seed) for r in group_todo)}"
            f" ({index[group_todo[0].run_id] + 1}-"
            f"{index[group_todo[-1].run_id] + 1} of {len(runs)})")
        for record in _run_group(group_todo, sweep, workdir, train_fns,
                                 configs_dir, histograms, log, name):
          log(f"[ablate {name}] {record.run.run_id}: {record.status}"
              f" ({record.wall_s:.1f} s)")
          ours[record.run.run_id] = record
      if any(ours[r.run_id].status == "interrupted" for r in group_todo):
        stopped = True   # SIGTERM: the rest is resumed by a later session
        break
    if stopped or not held:
      break
    if held != waited_for:
      log(f"[ablate {name}] waiting for {len(held)} group(s) that other"
          f" workers are running: {', '.join(held)}")
      waited_for = held
    time.sleep(poll_s)

  def finish(meta):
    sessions = meta.setdefault("sessions", [])
    mine = next((s for s in sessions if s.get("id") == session["id"]), None)
    if mine is None:   # sweep.json was rewritten meanwhile
      sessions.append(session)
      mine = session
    mine.update(wall_s=time.perf_counter() - session_start, finished=_now())
  _update_meta(workdir, board, finish)
  records = []
  for run in runs:
    if run.run_id in ours:
      records.append(ours[run.run_id])
      continue
    previous = read_status(run_dir(run)) or {}
    status = previous.get("status", "pending")
    if stopped and status not in FINISHED:
      status = "pending"
    records.append(RunRecord(run, run_dir(run), status,
                             float(previous.get("wall_s", 0.0)),
                             previous.get("error")))
  return records
