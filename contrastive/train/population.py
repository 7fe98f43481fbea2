"""Populations: many runs of one experiment trained by one process.

A population is a list of run configs that differ only in their seed and in
numeric hyperparameters (a loss's floats, e.g. `loss.temperature`,
`loss.tau_plus`, `loss.beta`, and `optimizer.learning_rate`). Its members
share everything that does not depend on those: the data (loaded once), the
model, augmentation and objective, and the compiled programs (the train
step, the embedding and evaluation programs), while each member keeps its
own initialisation, data order, augmentation stream, checkpoints, metrics
and results, in a workdir laid out exactly as a solo run's. A member's
checkpoint is a solo run's checkpoint: it can be resumed alone.

How the members execute is chosen per backend (`EXECUTIONS`):

* 'sequential': each step, the one compiled step runs once per member. On a
  CPU this is the fastest (benchmarks/README.md, "Populations"): vmapping a
  convolution over members makes it a grouped convolution, which XLA:CPU
  runs several times slower than the members' plain convolutions one after
  another. Without swept hyperparameters every member runs the very
  program a solo run compiles, so its result is bitwise a solo run's.
* 'vmap': one compiled step over the members' stacked states (`jax.vmap`),
  which keeps a GPU or TPU busy where one small model would leave it mostly
  idle. Members agree with their solo runs to float rounding. Hooks (MCL,
  cluster-balanced batches) need 'sequential'.
* 'auto': 'vmap' on GPU and TPU when the method has no hooks, else
  'sequential'.

Swept hyperparameters reach the step as arrays (`train_step`'s `hparams`):
the loss's own floats replace the bound ones, and a member's learning rate
becomes a scale of the optimizer's updates, `lr_member / lr_config`.

Example:
  configs = member_configs(config)   # config.population = {seeds: (0, 1, 2)}
  outcomes = train_population(configs, [f"{workdir}/members/{n}" ...])
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from contrastive import config_sections
from contrastive.train import compiler
from contrastive.train import experiment as experiment_lib
from contrastive.train import mesh as mesh_lib
from contrastive.train.step import train_step

EXECUTIONS = ("auto", "sequential", "vmap")
# Optimizer fields that may differ between members.
OPTIMIZER_FIELDS = ("learning_rate",)


@dataclasses.dataclass(frozen=True)
class Sweep:
  """What varies across a population's members.

  Attributes:
    loss: names of `config.loss` floats that differ between members.
    learning_rate: whether `config.optimizer.learning_rate` differs.
  """

  loss: tuple[str, ...] = ()
  learning_rate: bool = False

  @property
  def empty(self) -> bool:
    return not self.loss and not self.learning_rate


def _plain(config: Any) -> dict[str, Any]:
  return config_sections.as_dict(config)


def _without_swept(config: Mapping[str, Any]) -> dict[str, Any]:
  """The config less the fields members may set differently."""
  out = copy.deepcopy(_plain(config))
  out.pop("seed", None)
  out.pop("population", None)
  loss = out.get("loss", {})
  for key in list(loss):
    if isinstance(loss[key], float):
      loss.pop(key)
  for key in OPTIMIZER_FIELDS:
    out.get("optimizer", {}).pop(key, None)
  return out


def _differences(a: Any, b: Any, prefix: str = "config") -> list[str]:
  if isinstance(a, Mapping) and isinstance(b, Mapping):
    out = []
    for key in sorted(set(a) | set(b)):
      if key not in a or key not in b:
        out.append(f"{prefix}.{key}")
      else:
        out += _differences(a[key], b[key], f"{prefix}.{key}")
    return out
  return [] if a == b else [prefix]


def sweep_of(configs: Sequence[Any]) -> Sweep:
  """The fields in which `configs` differ; raises if they differ elsewhere.

  Raises:
    ValueError: the configs differ in a field other than `seed`, the loss's
      floats and `optimizer.learning_rate` (the message names the field):
      such members cannot share compiled programs.
  """
  if not configs:
    raise ValueError("a population needs at least one config.")
  first = _without_swept(configs[0])
  for i, config in enumerate(configs[1:], start=1):
    diff = _differences(first, _without_swept(config))
    if diff:
      raise ValueError(
          f"population member {i} differs from member 0 in {diff}; members"
          " may differ only in seed, the loss's float hyperparameters and"
          f" optimizer.{'/'.join(OPTIMIZER_FIELDS)}. Train such configs as"
          " separate runs (or populations).")
  plain = [_plain(c) for c in configs]
  loss_keys = sorted(
      k for k, v in plain[0]["loss"].items()
      if isinstance(v, float) and len({p["loss"][k] for p in plain}) > 1)
  rates = {p["optimizer"]["learning_rate"] for p in plain}
  return Sweep(loss=tuple(loss_keys), learning_rate=len(rates) > 1)


def member_hparams(config: Any, reference: Any, sweep: Sweep
                   ) -> dict[str, Any] | None:
  """`train_step`'s `hparams` for the member `config`: float32 scalars of
  the swept fields; the learning rate as a scale of `reference`'s (the
  config the shared optimizer was built from). None for an empty sweep."""
  if sweep.empty:
    return None
  out: dict[str, Any] = {}
  if sweep.loss:
    out["loss"] = {k: jnp.float32(config.loss[k]) for k in sweep.loss}
  if sweep.learning_rate:
    base = float(reference.optimizer.learning_rate)
    if base == 0.0:
      raise ValueError(
          "members' learning rates are scales of member 0's, which is 0;"
          " give member 0 a non-zero optimizer.learning_rate.")
    out["learning_rate_scale"] = jnp.float32(
        float(config.optimizer.learning_rate) / base)
  return out


def member_name(config: Any, sweep: Sweep) -> str:
  """'seed3', or 'seed3-temperature=0.2-learning_rate=0.003'."""
  parts = [f"seed{int(config.seed)}"]
  parts += [f"{k}={config.loss[k]:g}" for k in sweep.loss]
  if sweep.learning_rate:
    parts.append(f"learning_rate={config.optimizer.learning_rate:g}")
  return "-".join(parts)


def is_population(config: Any) -> bool:
  """Whether `config.population` names seeds or a sweep."""
  population = _plain(config.get("population") or {})
  return bool(population.get("seeds") or population.get("sweep"))


def _sweep_fields(sweep: Any) -> list[tuple[str, str, tuple[float, ...]]]:
  """`(section, name, values)` of a sweep mapping or string."""
  if isinstance(sweep, str):
    fields = []
    for item in sweep.replace(";", " ").split():
      key, sep, values = item.partition("=")
      section, dot, name = key.partition(".")
      if not sep or not dot or not values:
        raise ValueError(
            f"config.population.sweep item {item!r} must read"
            " 'section.field=v1,v2,...', e.g. 'loss.temperature=0.1,0.5'.")
      fields.append((section, name,
                     tuple(float(v) for v in values.split(","))))
    return fields
  return [(section, name, tuple(options))
          for section, values in _plain(sweep).items()
          for name, options in _plain(values).items()]


def member_configs(config: ml_collections.ConfigDict
                   ) -> list[ml_collections.ConfigDict]:
  """The member configs of `config.population`, or `[config]` without one.

  `config.population` holds `seeds` (a tuple) and `sweep`: `{'loss': {name:
  values}, 'optimizer': {'learning_rate': values}}` with a tuple of values
  per field, or the same as a string, 'loss.temperature=0.1,0.5
  optimizer.learning_rate=0.001,0.003' (for the command line); the members
  are every combination of one value per swept field and a seed (seeds
  vary fastest). Without seeds and sweep there is no population.

  Example:
    config.population = dict(seeds=(0, 1),
                             sweep=dict(loss=dict(temperature=(0.1, 0.5))))
    member_configs(config)  # 4 configs: t 0.1 seeds 0, 1; t 0.5 seeds 0, 1
  """
  if not is_population(config):
    return [config]
  population = _plain(config.population)
  config_sections.check_fields(population, ("seeds", "sweep", "execution"),
                               "config.population")
  seeds = tuple(population.get("seeds") or (config.seed,))
  fields = _sweep_fields(population.get("sweep") or {})
  floats = [f"loss.{k}" for k, v in config.loss.items()
            if isinstance(v, float)]
  sweepable = floats + [f"optimizer.{f}" for f in OPTIMIZER_FIELDS]
  for section, name, _ in fields:
    if f"{section}.{name}" not in sweepable:
      raise ValueError(
          f"config.population.sweep field {section}.{name} cannot differ"
          " between members; sweepable fields of this config:"
          f" {', '.join(sweepable)}.")
  out = []
  for values in itertools.product(*(options for _, _, options in fields)):
    for seed in seeds:
      member = copy.deepcopy(config)
      with member.unlocked():
        member.population = None
      member.seed = int(seed)
      for (section, name, _), value in zip(fields, values):
        member[section][name] = float(value)
      out.append(member)
  return out


def resolve_execution(execution: str, *, has_hooks: bool,
                      backend: str | None = None) -> str:
  """'sequential' or 'vmap' for `execution` on `backend` (default: JAX's)."""
  if execution not in EXECUTIONS:
    raise ValueError(
        f"Unknown population execution {execution!r}; valid:"
        f" {', '.join(EXECUTIONS)}.")
  if execution == "vmap" and has_hooks:
    raise ValueError(
        "population execution 'vmap' cannot run hooks (MCL stages,"
        " cluster-balanced batches), which replace one member's state"
        " between steps; use execution='sequential'.")
  if execution != "auto":
    return execution
  backend = backend or jax.default_backend()
  return "vmap" if backend in ("gpu", "tpu") and not has_hooks else "sequential"


def stack(trees: Sequence[Any]) -> Any:
  """Members' pytrees stacked along a new leading axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree: Any, index: int) -> Any:
  """Member `index` of a stacked pytree."""
  return jax.tree.map(lambda x: x[index], tree)


def stack_hparams(hparams: Sequence[Mapping[str, Any] | None]) -> Any:
  if hparams[0] is None:
    return None
  return jax.tree.map(lambda *xs: jnp.stack(xs), *hparams)


def stack_batches(batches: Sequence[Mapping[str, np.ndarray]]
                  ) -> dict[str, np.ndarray]:
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


class SequentialExecutor:
  """Members one after another, each step, through one compiled step.

  Attributes:
    states: the members' train states, in member order.
  """

  stacked = False

  def __init__(self, exp, shardings: Any, sweep: Sweep, num_members: int):
    self._step = experiment_lib.compile_train_step(
        exp, shardings, with_hparams=not sweep.empty)
    self._with_hparams = not sweep.empty
    self.states: list[Any] = [None] * num_members

  def set_states(self, states: Sequence[Any]) -> None:
    self.states = list(states)

  def state(self, index: int) -> Any:
    return self.states[index]

  def set_state(self, index: int, state: Any) -> None:
    self.states[index] = state

  def step(self, indices: Sequence[int], batches: Sequence[Any],
           hparams: Sequence[Any]) -> dict[int, Any]:
    """Steps members `indices` on their `batches`; returns their metrics."""
    metrics = {}
    for i, batch, h in zip(indices, batches, hparams):
      args = (self.states[i], batch) + ((h,) if self._with_hparams else ())
      self.states[i], metrics[i] = self._step(*args)
    return metrics


class VmapExecutor:
  """Every member in one compiled step over stacked states (`jax.vmap`)."""

  stacked = True

  def __init__(self, exp, shardings: Any, sweep: Sweep, num_members: int):
    self._shardings = mesh_lib.stacked_shardings(shardings)
    self._with_hparams = not sweep.empty
    step = functools.partial(train_step, deps=exp.deps)
    replicated = mesh_lib.replicated(exp.mesh)
    in_shardings = (self._shardings,
                    mesh_lib.batch_sharding(exp.mesh, stacked=True))
    if self._with_hparams:
      in_shardings += (replicated,)
    self._step = jax.jit(
        jax.vmap(step), in_shardings=in_shardings,
        out_shardings=(self._shardings, replicated), donate_argnums=(0,),
        compiler_options=compiler.compiler_options(exp.config))
    self._num = num_members
    self.states = None

  def set_states(self, states: Sequence[Any]) -> None:
    self.states = jax.device_put(stack(states), self._shardings)

  def state(self, index: int) -> Any:
    return unstack(self.states, index)

  def set_state(self, index: int, state: Any) -> None:
    raise NotImplementedError(
        "execution 'vmap' does not replace one member's state (hooks need"
        " execution='sequential').")

  def step(self, indices: Sequence[int], batches: Any,
           hparams: Any) -> dict[int, Any]:
    """Steps every member; `batches` is already stacked; returns metrics."""
    if list(indices) != list(range(self._num)):
      raise ValueError("execution 'vmap' steps every member together.")
    args = (self.states, batches) + ((hparams,) if self._with_hparams else ())
    self.states, metrics = self._step(*args)
    return {i: jax.tree.map(lambda m, i=i: m[i], metrics) for i in indices}
