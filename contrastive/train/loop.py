"""`train_and_evaluate(config, workdir)`: the whole run, resumable.

The launcher, the tests and the colabs all call this one function; a
population of runs (`contrastive.train.population`: several seeds or float
hyperparameters trained by one process, sharing data and compiled programs)
goes through `train_population(configs, workdirs)`, of which a single run is
the one-member case.

Hooks (`contrastive.train.cluster_hooks`, chosen by the config) run host-side
work between steps that may replace the state: MCL's stage transitions and
the re-clustering of cluster-balanced batches. A hook has `restore(state)`,
`before_step(state, step) -> (state, metrics)` and `summary() -> dict`.
"""
from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Sequence

import jax
import numpy as np
from absl import logging
from etils import epath

from contrastive.train import cluster_hooks
from contrastive.train import evaluation
from contrastive.train import experiment as experiment_lib
from contrastive.train import mesh as mesh_lib
from contrastive.train import population as population_lib
from contrastive.train.agreement import Decision
from contrastive.train.agreement import PeerFailure
from contrastive.train.agreement import Stop
from contrastive.train.agreement import StopAgreement
from contrastive.train.checkpoint import Checkpointer
from contrastive.train.checkpoint import NonFiniteStateError
from contrastive.train.checkpoint import abstract_like
from contrastive.train.metrics_writer import MetricsWriter
from contrastive.train.metrics_writer import read_metrics
from contrastive.train.preemption import PreemptionGuard


def _progress(total: int, initial: int, enabled: bool):
  if not enabled:
    return None
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, initial=initial, dynamic_ncols=True,
              desc="train", unit="step")


def restore_or_init(exp, ckpt: Checkpointer, iterator, hooks=(), step=None):
  """The checkpoint's state and data position, or a fresh state.

  `step` picks the checkpoint; by default the newest one that verifies
  (`Checkpointer.restore_latest`: a damaged newer one is set aside with a
  warning). Each hook's `restore(state)` runs before the data position is
  restored (a cluster-balanced sampler needs its clusters to order the
  epoch).
  """
  shapes = experiment_lib.abstract_state(exp)
  shardings = experiment_lib.state_shardings(exp, shapes)
  target = abstract_like(shapes, shardings)
  if step is None:
    found = ckpt.restore_latest(target)
  else:
    found = (step, *ckpt.restore(target, step))
  if found is None:
    state, shardings = experiment_lib.init_state(exp)
    for hook in hooks:
      hook.restore(state)
    return state, shardings
  _, state, data_state = found
  for hook in hooks:
    hook.restore(state)
  iterator.set_state(data_state)
  logging.info("resumed from step %d", int(state.step))
  return state, shardings


@dataclasses.dataclass
class MemberOutcome:
  """How one member of a population ended.

  Attributes:
    workdir: the member's folder.
    results: the final evaluation (as `train_and_evaluate` returns it), or
      `{'preempted': True, 'step': s}`; None if the member failed.
    error: the exception that stopped the member (a non-finite loss), else
      None.
  """

  workdir: str
  results: dict[str, Any] | None = None
  error: BaseException | None = None

  def unwrap(self) -> dict[str, Any]:
    """The results, or the member's error raised."""
    if self.error is not None:
      raise self.error
    return self.results


@dataclasses.dataclass
class _Member:
  """A member's host-side parts."""

  index: int
  exp: Any
  workdir: str
  ckpt: Checkpointer
  iterator: Any
  hooks: list[Any]
  writer: MetricsWriter
  hparams: Any
  step: int = 0
  error: BaseException | None = None
  # Training time carried over from before a resume (metrics.jsonl).
  cpu_offset: float = 0.0
  wall_offset: float = 0.0


def _previous_train_time(workdir: str, step: int) -> tuple[float, float]:
  """`(train_cpu_s, train_wall_s)` logged at the last row at or before
  `step` of `workdir/metrics.jsonl` (a resumed run keeps counting)."""
  cpu = wall = 0.0
  if step:
    for row in read_metrics(workdir):
      if row.get("step", 0) <= step and "train_cpu_s" in row:
        cpu, wall = float(row["train_cpu_s"]), float(row["train_wall_s"])
  return cpu, wall


def _open_member(index, base_exp, config, workdir, sweep, is_main) -> _Member:
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  exp = experiment_lib.for_member(base_exp, config)
  train_cfg = config.train
  return _Member(
      index=index, exp=exp, workdir=workdir,
      ckpt=Checkpointer(str(epath.Path(workdir) / "checkpoints"),
                        max_to_keep=int(train_cfg.get("keep_checkpoints", 3))),
      iterator=exp.train_iterator(), hooks=cluster_hooks.build_hooks(exp),
      writer=MetricsWriter(workdir, enabled=is_main),
      hparams=population_lib.member_hparams(config, base_exp.config, sweep))


def _restore(members: list[_Member], executor) -> None:
  """Each member's latest checkpoint (sequential), or the newest step that
  every member has checkpointed (vmap: the members step together)."""
  steps = [m.ckpt.latest_step() for m in members]
  if executor.stacked:
    common = None if None in steps else min(steps)
    if common is None and any(s is not None for s in steps):
      logging.warning("some members have no checkpoint: every member of the"
                      " vmapped population starts again from step 0.")
    steps = [common] * len(members)
  states = []
  for member, step in zip(members, steps):
    state, _ = restore_or_init(member.exp, member.ckpt, member.iterator,
                               member.hooks, step=step)
    member.step = int(state.step)
    # Rows logged after this checkpoint will be logged again: drop them.
    member.writer.resume(member.step)
    member.cpu_offset, member.wall_offset = _previous_train_time(
        member.workdir, member.step)
    states.append(state)
  executor.set_states(states)


def _check_sweep(exp, sweep: population_lib.Sweep) -> None:
  bound = set(exp.deps.objective.hparams)
  unknown = sorted(set(sweep.loss) - bound)
  if unknown:
    raise ValueError(
        f"config.loss fields {unknown} differ between population members,"
        f" but loss {exp.deps.objective.name!r} takes them when it is built"
        " (not per step); members may differ in:"
        f" {', '.join(sorted(bound)) or '(none)'}.")


def _member_batches(members, active, executor, exp):
  """The next batch of each active member (stacked for vmap)."""
  if executor.stacked:
    local = [next(m.iterator) for m in members]
    return mesh_lib.global_batch(population_lib.stack_batches(local), exp.mesh,
                                 stacked=True)
  return [mesh_lib.global_batch(next(m.iterator), exp.mesh) for m in active]


def _fail(member: _Member, error: BaseException) -> None:
  member.ckpt.wait()   # lets an in-flight save of a finite step finish
  latest = member.ckpt.latest_step()
  member.ckpt.close()
  member.writer.close()
  if (isinstance(error, FloatingPointError)
      and not isinstance(error, NonFiniteStateError)):
    where = (f"the last finite checkpoint is step {latest} in"
             f" {member.ckpt.directory}; re-running resumes from it" if
             latest is not None else "no checkpoint was saved before it")
    error = FloatingPointError(f"{error} ({where}).")
  member.error = error
  logging.error("population member %d (%s) failed: %s", member.index,
                member.workdir, error)


def _finish(member: _Member, state, input_cache: dict) -> dict[str, Any]:
  exp, config = member.exp, member.exp.config
  member.ckpt.save(int(state.step), state, member.iterator.get_state(),
                   force=True)
  member.ckpt.close()
  results = evaluation.final(exp, state) if config.eval.get("final",
                                                            True) else {}
  results["step"] = int(state.step)
  baselines = evaluation.baselines(exp, input_cache=input_cache)
  if baselines:
    results["baselines"] = baselines
  for hook in member.hooks:
    results.update(hook.summary())
  member.writer.write(int(state.step), {k: v for k, v in results.items()
                                        if isinstance(v, (int, float))})
  member.writer.close()
  if jax.process_index() == 0:
    (epath.Path(member.workdir) / "results.json").write_text(
        json.dumps(results, indent=2))
  return results


class _TrainClock:
  """CPU (all threads) and wall seconds spent training, without evaluation
  and checkpoints (for learning curves against CPU minutes), and the rate
  since the last logged step."""

  def __init__(self, step: int):
    self.cpu = self.wall = 0.0
    self.resume()
    self._logged_at, self._logged_step = time.perf_counter(), step

  def resume(self) -> None:
    self._cpu, self._wall = time.process_time(), time.perf_counter()

  def pause(self) -> None:
    self.cpu += time.process_time() - self._cpu
    self.wall += time.perf_counter() - self._wall

  def steps_per_sec(self, step: int) -> float:
    return (step - self._logged_step) / max(
        time.perf_counter() - self._logged_at, 1e-9)

  def mark_logged(self, step: int) -> None:
    self._logged_at, self._logged_step = time.perf_counter(), step


def _run_hooks(active: Sequence[_Member], executor, step: int) -> None:
  for m in active:
    for hook in m.hooks:
      state, hook_metrics = hook.before_step(executor.state(m.index), step)
      executor.set_state(m.index, state)
      if hook_metrics:
        m.writer.write(step, hook_metrics)


def _log(m: _Member, values: dict[str, Any], done: int, base, clock,
         members: Sequence[_Member], bar) -> None:
  """Writes a member's logged step; fails it on a non-finite loss."""
  if not np.isfinite(values["loss"]):
    _fail(m, FloatingPointError(
        f"loss is {values['loss']} at step {done}; lower the learning rate"
        f" or raise the temperature (see {m.workdir}/metrics.jsonl)."))
    return
  rate = clock.steps_per_sec(done)
  # A population's time is shared by its members still training.
  share = max(1, sum(x.error is None for x in members))
  learning_rate = base.lr_schedule(m.exp.optimizer_step(done - 1))
  if m.hparams and "learning_rate_scale" in m.hparams:
    learning_rate *= float(m.hparams["learning_rate_scale"])
  values.update(
      steps_per_sec=rate, examples_per_sec=rate * base.batch_size,
      learning_rate=learning_rate,
      train_cpu_s=m.cpu_offset + clock.cpu / share,
      train_wall_s=m.wall_offset + clock.wall / share)
  m.writer.write(done, values)
  if bar is not None and m.index == min(x.index for x in members
                                        if x.error is None):
    bar.set_postfix(loss=f"{values['loss']:.4f}",
                    ex_per_s=f"{rate * base.batch_size:.0f}")


def train_population(configs: Sequence[Any], workdirs: Sequence[str], *,
                     execution: str = "auto",
                     guard: PreemptionGuard | None = None
                     ) -> list[MemberOutcome]:
  """Trains the members `configs` (one workdir each), resuming each.

  Args:
    configs: run configs that differ only in seed and float hyperparameters
      (`population.sweep_of`); e.g. `population.member_configs(config)`.
    workdirs: one folder per member, laid out as a solo run's.
    execution: 'auto', 'sequential' or 'vmap' (`population.EXECUTIONS`).
    guard: stops every member after the current step when set (SIGTERM).

  Returns:
    One `MemberOutcome` per member. A member whose loss turns non-finite
    fails alone (its last finite checkpoint kept); the others go on.
  """
  if len(configs) != len(workdirs):
    raise ValueError(f"{len(configs)} configs but {len(workdirs)} workdirs;"
                     " give one workdir per population member.")
  sweep = population_lib.sweep_of(configs)
  base = experiment_lib.build_experiment(configs[0])
  _check_sweep(base, sweep)
  is_main = jax.process_index() == 0
  members = [_open_member(i, base, c, w, sweep, is_main)
             for i, (c, w) in enumerate(zip(configs, workdirs))]
  execution = population_lib.resolve_execution(
      execution, has_hooks=any(m.hooks for m in members))
  shardings = experiment_lib.state_shardings(
      base, experiment_lib.abstract_state(base))
  executor = {"sequential": population_lib.SequentialExecutor,
              "vmap": population_lib.VmapExecutor}[execution](
                  base, shardings, sweep, len(members))
  _restore(members, executor)
  hparams = [m.hparams for m in members]
  if executor.stacked:
    hparams = population_lib.stack_hparams(hparams)

  train_cfg = configs[0].train
  log_every = int(train_cfg.get("log_every", 50))
  ckpt_every = int(train_cfg.get("checkpoint_every", 1000))
  eval_every = int(train_cfg.get("eval_every", 0))
  num_steps = base.num_steps
  start = min(m.step for m in members)
  bar = _progress(num_steps, start, is_main and train_cfg.get("progress", True))
  guard = guard or PreemptionGuard()
  agreement = StopAgreement(
      timeout_s=float(train_cfg.get("agreement_timeout_s", 1800.0)))
  clock = _TrainClock(start)
  # This process's host-side error (data, hooks, logging, saving): it stops
  # every process at the next exchange instead of leaving them in a
  # collective that this process would never join.
  error: BaseException | None = None
  decision, done = Decision(Stop.NONE), start
  with guard:
    for step in range(start, num_steps + 1):
      if all(m.error is not None for m in members):
        break  # the members fail on replicated values: on every process
      active, batches = [], None
      # What a preemption at this step saves: the state before the hooks
      # and the data position before this step's batches were drawn.
      before = {m.index: (executor.state(m.index) if m.hooks else None,
                          m.iterator.get_state()) for m in members}
      if step < num_steps and error is None:
        try:
          active = [m for m in members if m.error is None and m.step == step]
          if active or executor.stacked:
            _run_hooks(active, executor, step)
            batches = _member_batches(members, active, executor, base)
        except Exception as e:  # pylint: disable=broad-except
          error = e
      decision = _agree(agreement, guard, error, step)
      if decision.reason is not Stop.NONE or step == num_steps:
        break
      if not active and not executor.stacked:
        continue
      if executor.stacked:
        metrics = executor.step(range(len(members)), batches, hparams)
      else:
        metrics = executor.step([m.index for m in active], batches,
                                [m.hparams for m in active])
      done = step + 1
      try:
        _after_step(active, members, executor, metrics, done, base, clock,
                    bar, log_every=log_every, eval_every=eval_every,
                    ckpt_every=ckpt_every)
      except Exception as e:  # pylint: disable=broad-except
        error = e
  if bar is not None:
    bar.close()
  for m in members:  # stop data worker processes (config.train.data_workers)
    close = getattr(m.iterator, "close", None)
    if close is not None:
      close()
  if decision.reason is Stop.ERROR:
    _abort(members, error, decision)
  preempted = decision.reason is Stop.PREEMPTED
  if preempted:
    for m in members:
      if m.error is None:
        state, data_state = before[m.index]
        _save(m, executor.state(m.index) if state is None else state,
              data_state, force=True)
  outcomes = []
  input_cache: dict[str, Any] = {}
  for m in members:
    if m.error is not None:
      outcomes.append(MemberOutcome(m.workdir, error=m.error))
    elif preempted:
      m.ckpt.close()
      m.writer.close()
      outcomes.append(MemberOutcome(m.workdir, {"preempted": True,
                                                "step": m.step}))
    else:
      try:
        outcomes.append(MemberOutcome(
            m.workdir, _finish(m, executor.state(m.index), input_cache)))
      except NonFiniteStateError as e:
        _fail(m, e)
        outcomes.append(MemberOutcome(m.workdir, error=m.error))
  if preempted:
    who = ("this process" if decision.process == jax.process_index() else
           f"process {decision.process}")
    logging.warning("stopped after step %d (SIGTERM or guard.request() on"
                    " %s); checkpoint saved", done, who)
  return outcomes


def _agree(agreement: StopAgreement, guard: PreemptionGuard,
           error: BaseException | None, step: int) -> Decision:
  if error is not None:
    return agreement.agree(
        Stop.ERROR, f"{type(error).__name__} before step {step + 1}: {error}")
  return agreement.agree(Stop.PREEMPTED if guard.requested else Stop.NONE)


def _after_step(active, members, executor, metrics, done, base, clock, bar,
                *, log_every: int, eval_every: int, ckpt_every: int) -> None:
  """Logs, evaluates and checkpoints the members that took step `done`."""
  num_steps = base.num_steps
  log_now = done % log_every == 0 or done == num_steps
  eval_now = eval_every and done % eval_every == 0 and done != num_steps
  save_now = done % ckpt_every == 0
  if log_now or eval_now or save_now:
    jax.block_until_ready(executor.states)
    clock.pause()
  for m in active:
    m.step = done
    if log_now:
      _log(m, jax.device_get(metrics[m.index]), done, base, clock, members,
           bar)
    if m.error is not None:
      continue
    if eval_now:
      m.writer.write(done, evaluation.monitor(m.exp, executor.state(m.index)))
    if save_now:
      _save(m, executor.state(m.index), m.iterator.get_state())
  if log_now:
    clock.mark_logged(done)
  if log_now or eval_now or save_now:
    clock.resume()
  if bar is not None:
    bar.update(1)


def _save(m: _Member, state, data_state, *, force: bool = False) -> None:
  """Checkpoints a member; a non-finite state fails the member instead (the
  check is on replicated values, so every process decides alike)."""
  try:
    m.ckpt.save(m.step, state, data_state, force=force)
  except NonFiniteStateError as e:
    _fail(m, e)


def _abort(members: Sequence[_Member], error: BaseException | None,
           decision: Decision) -> None:
  """Every process stops: waits for the saves in flight, then raises this
  process's error, or `PeerFailure` naming the process that failed."""
  for m in members:
    if m.error is None:
      m.ckpt.close()
      m.writer.close()
  if error is not None:
    raise error
  raise PeerFailure(f"process {decision.process} stopped with an error, so"
                    f" this one stopped too: {decision.message}")


def train_and_evaluate(config, workdir: str, *,
                       guard: PreemptionGuard | None = None) -> dict[str, Any]:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint).

  Returns a dict with the final evaluation (kNN, linear probe, alignment,
  uniformity, nuisance probes), or `{'preempted': True, 'step': s}` when a
  SIGTERM (or `guard.request()`) stopped the run after saving.

  A config with a `population` (`population.member_configs`) trains its
  members in `workdir/members/<name>` and returns `{'members': {name:
  results or {'error': message}}}`, also written to
  `workdir/population.json`.

  Raises:
    FloatingPointError: the loss became non-finite (the last finite
      checkpoint is kept); for a population, only that member fails.
  """
  if not population_lib.is_population(config):
    [outcome] = train_population([config], [workdir], execution="sequential",
                                 guard=guard)
    return outcome.unwrap()
  configs = population_lib.member_configs(config)
  sweep = population_lib.sweep_of(configs)
  names = [population_lib.member_name(c, sweep) for c in configs]
  outcomes = train_population(
      configs, [str(epath.Path(workdir) / "members" / n) for n in names],
      execution=config.population.get("execution", "auto"), guard=guard)
  results = {"members": {
      n: o.results if o.error is None else
      {"error": f"{type(o.error).__name__}: {o.error}"}
      for n, o in zip(names, outcomes)}}
  if jax.process_index() == 0:
    (epath.Path(workdir) / "population.json").write_text(
        json.dumps(results, indent=2))
  return results
