r"""Preemption at random moments, measured: every stop clean, every resume exact.

  python -m benchmarks.preemption_trials --sigterm_trials=20 --kill_trials=5

SIGTERM trials: the launcher on 2 local processes (2 x 4 CPU devices,
jax.distributed on localhost, the tiny HAPT SimCLR run); at a moment drawn
uniformly over an uninterrupted run's duration (start-up and compilation
included), SIGTERM reaches process 0, process 1, or both (the second up to
0.5 s later). Each trial checks that both processes exit 0, that they
stopped after the same step and saved it (the newest checkpoint is the
step the launcher printed), then resumes the run and compares it with the
uninterrupted one: every logged loss and the final results, bit for bit.

kill -9 trials: one process, a checkpoint every step (so that a save is
almost always in flight), SIGKILL at a random moment, then the resume,
compared the same way.

Exchange cost: the latency of the stop agreement that the processes hold
before each step (contrastive/train/agreement.py), timed over 300
exchanges on the same 2 processes, beside the run's own step time.

Prints one row a trial and a summary; exits 1 if any trial failed.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "configs/simclr.py:uci_hapt,tiny"
NUM_STEPS = 80
OVERRIDES = [f"--config.train.num_steps={NUM_STEPS}",
             "--config.train.checkpoint_every=10", "--config.train.log_every=1",
             "--config.train.agreement_timeout_s=300"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(processes: int) -> dict:
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  if processes > 1:
    env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{_free_port()}",
               JAX_NUM_PROCESSES=str(processes),
               XLA_FLAGS="--xla_force_host_platform_device_count=4")
  else:
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  return env


def _launch(workdir, processes=2, extra=()):
  env = _env(processes)
  args = [sys.executable, "-m", "launch.main", f"--config={CONFIG}",
          f"--workdir={workdir}", *OVERRIDES, *extra]
  if processes > 1:
    args.insert(3, "--distributed")
  return [subprocess.Popen(args, cwd=ROOT, env=dict(env, JAX_PROCESS_ID=str(i)),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
          for i in range(processes)]


def _wait(procs, timeout=900):
  return [p.communicate(timeout=timeout)[0] for p in procs]


def _losses(workdir) -> dict:
  path = pathlib.Path(workdir) / "metrics.jsonl"
  rows = [json.loads(line) for line in path.read_text().splitlines()]
  steps = [r["step"] for r in rows if "loss" in r]
  if len(steps) != len(set(steps)):
    return {"repeated rows": sorted(steps)}
  return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _logged_steps(workdir) -> list[int]:
  path = pathlib.Path(workdir) / "metrics.jsonl"
  if not path.exists():
    return []
  steps = []
  for line in path.read_text().splitlines():
    try:
      row = json.loads(line)
    except ValueError:   # a line being written
      continue
    if "loss" in row:
      steps.append(row["step"])
  return steps


def _results(workdir) -> dict:
  return json.loads((pathlib.Path(workdir) / "results.json").read_text())


def _checkpoints(workdir) -> list[int]:
  folder = pathlib.Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def _printed(log: str) -> dict:
  """The JSON the launcher prints on process 0."""
  start = log.find("{\n")
  return json.loads(log[start:log.index("\n}", start) + 2])


def _reference(base, processes) -> tuple[dict, dict, float]:
  workdir = base / f"reference_{processes}"
  start = time.monotonic()
  procs = _launch(workdir, processes)
  logs = _wait(procs)
  seconds = time.monotonic() - start
  for p, log in zip(procs, logs):
    if p.returncode:
      sys.exit(f"the uninterrupted run failed:\n{log[-3000:]}")
  return _losses(workdir), _results(workdir), seconds


def _compare(workdir, ref_losses, ref_results) -> str:
  if _losses(workdir) != ref_losses:
    return "losses differ"
  if _results(workdir) != ref_results:
    return "results differ"
  return "equal"


def sigterm_trial(base, index, rng, duration, ref) -> dict:
  workdir = base / f"sigterm_{index}"
  who = rng.choice([(0,), (1,), (0, 1)])
  delay = rng.uniform(0, duration)
  gap = rng.uniform(0, 0.5)
  procs = _launch(workdir)
  time.sleep(delay)
  # How far training had got when the signal left: a run that then trains
  # to the end has ignored it.
  progress = max(_logged_steps(workdir), default=0)
  for n, i in enumerate(who):
    if n:
      time.sleep(gap)
    if procs[i].poll() is None:
      procs[i].send_signal(signal.SIGTERM)
  logs = _wait(procs)
  row = dict(trial=index, signalled="+".join(map(str, who)),
             at_s=round(delay, 1), logged_step_then=progress,
             exit_codes=[p.returncode for p in procs])
  if any(p.returncode for p in procs):
    row.update(ok=False, note=logs[0][-1500:] + logs[1][-1500:])
    return row
  printed = _printed(logs[0])
  if printed.get("preempted"):
    stop = printed["step"]
    latest = _checkpoints(workdir)[-1] if _checkpoints(workdir) else None
    row.update(stopped_after=stop, newest_checkpoint=latest)
    resumed = _launch(workdir)
    resumed_logs = _wait(resumed)
    if any(p.returncode for p in resumed):
      row.update(ok=False, note="resume failed: " + resumed_logs[0][-1500:])
      return row
    same_step = latest == stop
  else:
    row.update(stopped_after="finished", newest_checkpoint=NUM_STEPS)
    # Only a signal sent after the last step may let the run finish.
    same_step = progress == NUM_STEPS
    if not same_step:
      row["note"] = "the signal was ignored: the run trained to the end"
  verdict = _compare(workdir, *ref)
  row.update(resumed_vs_uninterrupted=verdict,
             ok=same_step and verdict == "equal")
  return row


def kill_trial(base, index, rng, duration, ref) -> dict:
  workdir = base / f"kill_{index}"
  delay = rng.uniform(0.3 * duration, 0.9 * duration)
  extra = ("--config.train.checkpoint_every=1",)
  [proc] = _launch(workdir, 1, extra)
  time.sleep(delay)
  proc.kill()
  proc.wait()
  row = dict(trial=index, signalled="SIGKILL", at_s=round(delay, 1),
             checkpoints_left=_checkpoints(workdir)[-3:]
             if (workdir / "checkpoints").exists() else [])
  [proc] = _launch(workdir, 1, extra)
  log = _wait([proc])[0]
  if proc.returncode:
    row.update(ok=False, note="resume failed: " + log[-1500:])
    return row
  verdict = _compare(workdir, *ref)
  row.update(resumed_vs_uninterrupted=verdict, ok=verdict == "equal")
  return row


_EXCHANGES = 300


def _exchange_worker() -> None:
  """One of the 2 processes timing the stop agreement."""
  from contrastive.train.distributed import initialize_from_env  # pylint: disable=g-import-not-at-top
  initialize_from_env()
  import jax  # pylint: disable=g-import-not-at-top
  from contrastive.train.agreement import Stop  # pylint: disable=g-import-not-at-top
  from contrastive.train.agreement import StopAgreement  # pylint: disable=g-import-not-at-top
  agreement = StopAgreement(timeout_s=120)
  for _ in range(20):
    agreement.agree(Stop.NONE)
  start = time.perf_counter()
  for _ in range(_EXCHANGES):
    agreement.agree(Stop.NONE)
  per = (time.perf_counter() - start) / _EXCHANGES
  if jax.process_index() == 0:
    print(json.dumps({"exchange_ms": per * 1000}))
  jax.distributed.shutdown()


def exchange_cost() -> float:
  env = _env(2)
  procs = [subprocess.Popen(
      [sys.executable, "-m", "benchmarks.preemption_trials",
       "--exchange_worker"], cwd=ROOT, env=dict(env, JAX_PROCESS_ID=str(i)),
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  logs = _wait(procs)
  line = [l for l in logs[0].splitlines() if l.startswith('{"exchange_ms"')]
  if not line:
    sys.exit(f"exchange timing failed:\n{logs[0][-3000:]}")
  return json.loads(line[0])["exchange_ms"]


def _step_ms(workdir) -> float:
  rows = [json.loads(line) for line in
          (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]
  rates = [r["steps_per_sec"] for r in rows if "steps_per_sec" in r][5:]
  rates.sort()
  return 1000 / rates[len(rates) // 2]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sigterm_trials", type=int, default=20)
  parser.add_argument("--kill_trials", type=int, default=5)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--quick", action="store_true",
                      help="2 SIGTERM trials and 1 SIGKILL trial")
  parser.add_argument("--exchange_worker", action="store_true",
                      help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.exchange_worker:
    _exchange_worker()
    return
  if args.quick:
    args.sigterm_trials, args.kill_trials = 2, 1
  rng = random.Random(args.seed)
  base = pathlib.Path(tempfile.mkdtemp(prefix="preemption_trials_"))
  print(f"workdirs under {base}", flush=True)
  rows = []
  ref2 = _reference(base, 2)
  print(f"uninterrupted 2-process run: {ref2[2]:.0f} s", flush=True)
  for i in range(args.sigterm_trials):
    rows.append(sigterm_trial(base, i, rng, ref2[2], ref2[:2]))
    print(json.dumps(rows[-1]), flush=True)
  if args.kill_trials:
    ref1 = _reference(base, 1)
    print(f"uninterrupted 1-process run: {ref1[2]:.0f} s", flush=True)
    for i in range(args.kill_trials):
      rows.append(kill_trial(base, i, rng, ref1[2], ref1[:2]))
      print(json.dumps(rows[-1]), flush=True)
  exchange = exchange_cost()
  step = _step_ms(base / "reference_2")
  ok = sum(bool(r["ok"]) for r in rows)
  print(f"\n{ok} of {len(rows)} trials clean and exact"
        f" ({args.sigterm_trials} SIGTERM, {args.kill_trials} SIGKILL).")
  print(f"stop agreement: {exchange:.2f} ms an exchange (2 processes,"
        f" localhost); the tiny run's step with its per-step logging:"
        f" {step:.1f} ms (median).")
  sys.exit(0 if ok == len(rows) else 1)


if __name__ == "__main__":
  main()
