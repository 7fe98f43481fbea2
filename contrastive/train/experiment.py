"""Builds everything a run needs from its config, and the initial state.

`build_experiment(config)` validates the config at start-up (unknown loss,
method, model, dataset or augmentation names fail here, with the valid
names), loads the data, and binds the model, augmentation, objective and
optimizer into the static `StepDeps` of the train step. `init_state` and
`compile_train_step` then place the state and the step on the mesh.

Cluster methods add to this: `config.mcl` (multistage contrastive learning:
the run is `num_stages` stages, negatives restricted by the train step's
`restrict_negatives` rule), `config.balanced_batches` (a cluster-balanced
sampler), and stateful losses (ClusterNS); their state is initialised here,
in `TrainState.extra`, and changed between steps by
`contrastive.train.cluster_hooks`.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from contrastive import augment as augment_lib
from contrastive import data as data_lib
from contrastive import models as models_lib
from contrastive.clustering import batching
from contrastive.clustering import mcl as mcl_lib
from contrastive.clustering import stages
from contrastive.negatives import queue as queue_lib
from contrastive.train import mesh as mesh_lib
from contrastive.train import methods as methods_lib
from contrastive.train.compiler import compiler_options
from contrastive.train.objectives import build_objective
from contrastive.train.objectives import check_negative_mask
from contrastive.train.optimizer import build_optimizer
from contrastive.train.schedules import momentum_schedule
from contrastive.train.state import TrainState
from contrastive.train.step import StepDeps, train_step


QUEUE_METADATA = ("index", "label")


@dataclasses.dataclass
class Experiment:
  """The static parts of a run (everything but the train state)."""

  config: Any
  train_data: Any
  test_data: Any
  deps: StepDeps
  preprocess: Any          # one raw example -> model input, for evaluation
  mesh: Any
  batch_size: int          # global
  num_steps: int
  lr_schedule: Any
  mcl: mcl_lib.MCLConfig | None = None              # config.mcl
  balanced: batching.BalancedConfig | None = None   # config.balanced_batches
  sampler: Any = None    # the IndexSampler (None: shuffle every epoch)
  # Compiled programs by name, shared by the members of a population (whose
  # experiments are copies of one, `for_member`).
  compiled: dict[str, Any] = dataclasses.field(
      default_factory=dict, repr=False, compare=False)

  @property
  def process_batch_size(self) -> int:
    return self.batch_size // jax.process_count()

  def optimizer_step(self, step: int) -> int:
    """The optimizer's own step count at global `step` (MCL restarts it)."""
    return step % self.mcl.steps_per_stage if self.mcl else step

  def train_iterator(self):
    iterator = data_lib.BatchIterator(
        self.train_data, batch_size=self.batch_size,
        seed=self.config.seed, shuffle=True, drop_remainder=True,
        process_index=jax.process_index(),
        process_count=jax.process_count(), sampler=self.sampler)
    # config.train.data_workers > 0: the same batches, made ahead by that
    # many grain worker processes (contrastive/data/prefetch.py).
    workers = int(self.config.train.get("data_workers", 0) or 0)
    if workers:
      from contrastive.data import prefetch  # pylint: disable=g-import-not-at-top
      return prefetch.PrefetchIterator(iterator, num_workers=workers)
    return iterator


def for_member(exp: Experiment, config) -> Experiment:
  """`exp` for a population member's `config` (another seed or float
  hyperparameters): the same data, model, objective and compiled programs;
  its own config and, for cluster-balanced batches, its own sampler."""
  sampler = exp.balanced and batching.make_sampler(
      exp.balanced, batch_size=exp.batch_size, seed=int(config.seed))
  return dataclasses.replace(exp, config=config, sampler=sampler)


def _with_host_crops(train_data, augment, num_views: int):
  """The train split drawing each view's crop from the whole image on the
  host (the recipe's `crop_on='host'`), with the recipe's crop law."""
  if not hasattr(train_data, "with_host_crops"):
    raise ValueError(
        f"config.augment.crop_on='host', but dataset"
        f" {train_data.info.name!r} cannot crop on the host (image_folder,"
        " stl10 and imagenet2012 can); set crop_on='device'.")
  spec = data_lib.host_crops.CropSpec(**augment.host_crop_params(),
                                      num_views=num_views)
  return train_data.with_host_crops(spec)


def _num_steps(config, num_examples: int) -> int:
  train = config.train
  if train.get("num_steps"):
    return int(train.num_steps)
  return int(train.num_epochs * (num_examples // train.batch_size))


def build_experiment(config, *, devices=None) -> Experiment:
  """Validates `config` and builds the static parts of the run."""
  objective = build_objective(config.loss, config.method)
  method = methods_lib.get_method(config.method)
  model = models_lib.build_model(config.model)
  augment = augment_lib.build_augment(config.augment)
  # Evaluation sees un-augmented inputs (uint8 images become [0, 1] floats);
  # the identity view draws nothing, so it takes no PRNG key.
  preprocess = functools.partial(
      augment_lib.build_augment({"name": "none"}).view_fn(0), None)
  batch_size = int(config.train.batch_size)
  if batch_size % jax.process_count():
    raise ValueError(
        f"config.train.batch_size={batch_size} must be divisible by the"
        f" number of processes ({jax.process_count()}).")
  mesh = mesh_lib.make_mesh(config.mesh.shape, devices=devices)
  data_size = mesh.shape[mesh_lib.DATA_AXIS]
  if batch_size % data_size:
    raise ValueError(
        f"config.train.batch_size={batch_size} must be divisible by the"
        f" mesh's data axis ({data_size} devices).")
  train_data = data_lib.build_dataset(config.data, "train")
  test_data = data_lib.build_dataset(config.data, "test")
  if augment.crop_on == "host":
    train_data = _with_host_crops(train_data, augment,
                                  int(config.get("num_views", 2)))
  num_steps = _num_steps(config, len(train_data))
  mcl = mcl_lib.parse_config(config.get("mcl"), default_steps=num_steps)
  for option in methods_lib.CLUSTER_OPTIONS:
    if option.restricts_negatives and config.get(option.section) is not None:
      check_negative_mask(objective.name, method.name, option.title)
  # Under MCL the optimizer (and its schedule) restarts with every stage.
  stage_steps = mcl.steps_per_stage if mcl else num_steps
  num_steps = mcl.num_steps if mcl else num_steps
  balanced = batching.parse_config(
      config.get("balanced_batches"), batch_size=batch_size,
      num_examples=len(train_data))
  sampler = balanced and batching.make_sampler(
      balanced, batch_size=batch_size, seed=int(config.seed))
  tx, lr_schedule = build_optimizer(
      config.optimizer, batch_size=batch_size, num_steps=stage_steps)
  momentum = None
  if method.queue:
    moco = config[method.section]
    if moco.queue_size % batch_size:
      raise ValueError(
          f"config.moco.queue_size={moco.queue_size} must be a multiple of the"
          f" global batch size {batch_size}; choose queue_size = m *"
          f" {batch_size}.")
  if method.momentum_encoder:
    moco = config[method.section]
    momentum = momentum_schedule(moco.momentum_start, moco.momentum_end,
                                 num_steps)
  deps = StepDeps(
      model=model, tx=tx, augment=augment, objective=objective,
      method=method,
      spec_transform=augment.spec_transform,
      momentum=momentum, num_views=int(config.get("num_views", 2)),
      use_predictor=bool(config.model.get("predictor_dims")),
      restrict_negatives=mcl and mcl_lib.ClusterNegatives(
          min_negatives=mcl.min_negatives, fallback=mcl.fallback),
  )
  return Experiment(
      config=config, train_data=train_data, test_data=test_data, deps=deps,
      preprocess=preprocess, mesh=mesh, batch_size=batch_size,
      num_steps=num_steps, lr_schedule=lr_schedule, mcl=mcl,
      balanced=balanced, sampler=sampler)


def _init_state(rng: jax.Array, example_x: jax.Array, *, exp: Experiment
                ) -> TrainState:
  deps = exp.deps
  init_rng, aug_rng, queue_rng, state_rng = jax.random.split(rng, 4)
  views = augment_lib.make_views(aug_rng, example_x, deps.augment,
                                 num_views=deps.num_views)
  x = views.reshape((-1,) + views.shape[2:])
  variables = deps.model.init({"params": init_rng}, x, train=False)
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  momentum_params = momentum_batch_stats = queue = None
  out = jax.eval_shape(
      functools.partial(deps.model.apply, train=False), variables, x)
  method = deps.method
  if method.momentum_encoder:
    momentum_params = jax.tree.map(jnp.copy, params)
    momentum_batch_stats = jax.tree.map(jnp.copy, batch_stats)
  if method.queue:
    dim = out["projection"].shape[-1]
    moco = exp.config[method.section]
    if moco.get("queue_init", "empty") not in ("empty", "random"):
      raise ValueError(
          f"config.moco.queue_init must be 'empty' or 'random', got"
          f" {moco.queue_init!r}.")
    # Each key's example index and label travel with it: the label gives the
    # queue's false-negative rate, the index lets tests check the order.
    queue = queue_lib.init_queue(
        moco.queue_size, dim, metadata=QUEUE_METADATA,
        rng=queue_rng if moco.get("queue_init", "empty") == "random" else None)
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
      opt_state=deps.tx.init(params), rng=state_rng,
      momentum_params=momentum_params,
      momentum_batch_stats=momentum_batch_stats, queue=queue,
      extra=_init_extra(exp, variables, out))


def _init_extra(exp: Experiment, variables, out) -> dict[str, Any]:
  """`TrainState.extra`: the state of a stateful loss and of the cluster
  methods (all of it checkpointed with the rest)."""
  extra = {}
  objective = exp.deps.objective
  if objective.has_state:
    head = "prediction" if exp.deps.use_predictor else "projection"
    extra["loss"] = objective.init_state(out[head].shape[-1], exp.batch_size)
  if exp.mcl is not None:
    encoder = {k: v for k, v in variables.items() if v}
    extra["mcl"] = stages.init_mcl_state(len(exp.train_data),
                                         exp.mcl.num_stages, encoder)
  if exp.balanced is not None:
    extra["balanced_clusters"] = jnp.full((len(exp.train_data),), -1,
                                          jnp.int32)
  return extra


def _example_input(exp: Experiment) -> np.ndarray:
  data_size = exp.mesh.shape[mesh_lib.DATA_AXIS]
  # As the train step sees it (host-cropped views: [b, V, h, w, C]).
  return np.asarray(data_lib.load_batch(
      exp.train_data, np.arange(data_size), epoch=0, seed=0)["x"])


def state_shardings(exp: Experiment, abstract_state: TrainState) -> Any:
  """Large kernels over `model`, everything else replicated (config.mesh)."""
  return mesh_lib.tree_shardings(
      abstract_state, exp.mesh, int(exp.config.mesh.get("shard_min_size", 2**18)))


def abstract_state(exp: Experiment) -> TrainState:
  if "abstract_state" not in exp.compiled:
    exp.compiled["abstract_state"] = jax.eval_shape(
        functools.partial(_init_state, exp=exp),
        jax.random.PRNGKey(0), _example_input(exp))
  return exp.compiled["abstract_state"]


def init_state(exp: Experiment, rng: jax.Array | None = None
               ) -> tuple[TrainState, Any]:
  """Returns the sharded initial state and its shardings.

  `rng` defaults to `PRNGKey(config.seed)`; MCL passes its own for the fresh
  encoder of each stage. The compiled initialisation is kept in
  `exp.compiled` (members of a population share it).
  """
  example = _example_input(exp)
  if rng is None:
    rng = jax.random.PRNGKey(exp.config.seed)
  shardings = state_shardings(exp, abstract_state(exp))
  if "init" not in exp.compiled:
    exp.compiled["init"] = jax.jit(functools.partial(_init_state, exp=exp),
                                   out_shardings=shardings)
  return exp.compiled["init"](rng, example), shardings


def compile_train_step(exp: Experiment, shardings: Any, *,
                       with_hparams: bool = False):
  """`jax.jit` of the step over the mesh: batch split on `data`, state
  donated (updated in place), metrics replicated, compiled with the
  backend's `config.compiler` options. `with_hparams`: the step takes
  `train_step`'s `hparams` (replicated) as its third argument."""
  in_shardings = (shardings, mesh_lib.batch_sharding(exp.mesh))
  if with_hparams:
    in_shardings += (mesh_lib.replicated(exp.mesh),)
  return jax.jit(
      functools.partial(train_step, deps=exp.deps),
      in_shardings=in_shardings,
      out_shardings=(shardings, mesh_lib.replicated(exp.mesh)),
      donate_argnums=(0,),
      compiler_options=compiler_options(exp.config),
  )


def config_summary(config: Mapping[str, Any]) -> str:
  return (f"method={config['method']} loss={config['loss']['name']}"
          f" data={config['data']['name']} model={config['model']['name']}")
