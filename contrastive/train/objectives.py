"""The contrastive objective selected by name in the config.

`config.loss.name` picks a loss (of `contrastive.losses`, or one that adds
negative sampling or clustering to it: SimANS, ClusterNS); the other fields of
`config.loss` are its hyperparameters, passed by keyword, so the config is the
single place they live. `config.method` picks where the negatives come from
(`contrastive.train.methods`: `'simclr'`, the other examples of the global
batch; `'moco'`, a queue of keys from a momentum encoder); each loss declares
here the sources it can take its negatives from, and whether it accepts a
`negative_mask` (`NEGATIVE_MASK_LOSSES`: the losses that MCL's cluster
restriction can narrow).

A loss may keep state across steps (ClusterNS's centroids): its spec then
names the config fields of that state and how to initialise and update it;
the train step keeps it in `TrainState.extra['loss']`.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from contrastive import config_sections
from contrastive import losses
from contrastive.clustering import clusterns
from contrastive.train import methods as methods_lib
from contrastive.train.methods import IN_BATCH
from contrastive.train.methods import QUEUE

Array = jax.Array
# Fields of config.loss read by this module rather than passed to the loss.
_ADAPTER_FIELDS = ("name", "symmetric_queue", "condition")
# Metadata a conditional loss may condition on.
CONDITIONS = ("speaker", "subject", "label", "representation")


@dataclasses.dataclass(frozen=True)
class Projections:
  """What the encoders produced for the views of one global batch.

  Attributes:
    online: `[v, b, p]` the online encoder's outputs (with gradient).
    momentum: `[v, b, p]` the momentum encoder's (no gradient), or None.
  """

  online: Array
  momentum: Array | None = None


@dataclasses.dataclass(frozen=True)
class _StateSpec:
  """State a loss carries across steps.

  `init(dim, batch_size, **fields)` and `update(state, proj, **fields)` read
  the config.loss `fields` (their keyword defaults apply when absent).
  """

  init: Callable[..., Any]
  update: Callable[..., Any]
  fields: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _Spec:
  fn: Callable[..., Any]
  # The negative sources (`methods.NEGATIVE_SOURCES`) it can take.
  sources: tuple[str, ...]
  call: Callable[..., Any]
  # Whether `call` hands `negative_mask` to the loss (so that rules such as
  # MCL's cluster restriction can act on it).
  uses_negative_mask: bool = False
  state: _StateSpec | None = None
  # Whether the loss draws random numbers (`call` then takes `rng=`).
  uses_rng: bool = False


def _pairwise(fn, proj, negatives, negative_mask, cfg, hparams,
              direction_args=((), ())):
  """In-batch: view 1 against view 2. Queue: q1 -> k2, and with
  `symmetric_queue` also q2 -> k1, averaged. `direction_args[i]` are extra
  positional arguments of direction i (a sampling loss's keys)."""
  if negatives is None:
    return fn(proj.online[0], proj.online[1], *direction_args[0],
              negative_mask=negative_mask, **hparams)
  q, k = proj.online, proj.momentum
  loss, aux = fn(q[0], k[1], *direction_args[0], negatives=negatives,
                 negative_mask=negative_mask, **hparams)
  if not cfg.get("symmetric_queue", False):
    return loss, aux
  loss2, aux2 = fn(q[1], k[0], *direction_args[1], negatives=negatives,
                   negative_mask=negative_mask, **hparams)
  return (loss + loss2) / 2, jax.tree.map(lambda a, b: (a + b) / 2, aux, aux2)


def _pairwise_queue_symmetric(fn, proj, batch, negatives, negative_mask, cfg,
                              hparams):
  del batch
  return _pairwise(fn, proj, negatives, negative_mask, cfg, hparams)


def _sampled(fn, proj, batch, negatives, negative_mask, cfg, hparams, *,
             rng):
  """A pairwise loss that draws its negatives (SimANS) from `rng`; each
  queue direction draws with a key of its own."""
  del batch
  keys = jax.random.split(rng)
  return _pairwise(fn, proj, negatives, negative_mask, cfg, hparams,
                   direction_args=((keys[0],), (keys[1],)))


def _dual_view(fn, proj, batch, negatives, negative_mask, cfg, hparams):
  del batch, cfg
  q, k = proj.online, proj.momentum
  # The mask carries the queue's validity: before the queue has filled, its
  # empty (zero) slots must not act as negatives or win the top-k.
  return fn(q[0], k[0], q[1], k[1], negatives, negative_mask=negative_mask,
            **hparams)


def _supcon(fn, proj, batch, negatives, negative_mask, cfg, hparams):
  del negatives, negative_mask, cfg
  return fn(jnp.swapaxes(proj.online, 0, 1), batch["label"], **hparams)


def _conditional(fn, proj, batch, negatives, negative_mask, cfg, hparams):
  del negatives, negative_mask
  name = cfg.get("condition", "representation")
  condition = None if name == "representation" else batch[name]
  return fn(proj.online[0], proj.online[1], condition, **hparams)


def _multi_view(fn, proj, batch, negatives, negative_mask, cfg, hparams):
  del batch, negatives, negative_mask, cfg
  return fn(jnp.swapaxes(proj.online, 0, 1), **hparams)


def _clusterns(fn, proj, batch, negatives, negative_mask, cfg, hparams, *,
               state):
  del batch, negatives, cfg
  return fn(proj.online[0], proj.online[1], state.centroids,
            active=state.active, negative_mask=negative_mask, **hparams)


def _clusterns_init(dim: int, batch_size: int, *, num_clusters: int = 128):
  if num_clusters > batch_size:
    raise ValueError(
        f"config.loss.num_clusters={num_clusters} must be <= the global batch"
        f" size {batch_size}: ClusterNS seeds its centroids from one batch.")
  return clusterns.init_centroid_state(num_clusters, dim)


def _clusterns_update(state, proj: Projections, *,
                      centroid_momentum: float = 0.9,
                      start_similarity: float = 0.4):
  return clusterns.update_centroids(
      state, proj.online[0], proj.online[1], momentum=centroid_momentum,
      start_similarity=start_similarity)


def _specs() -> Mapping[str, _Spec]:
  both = (IN_BATCH, QUEUE)
  masked = dict(uses_negative_mask=True)
  return {
      "infonce": _Spec(losses.infonce, both, _pairwise_queue_symmetric,
                       **masked),
      "dcl": _Spec(losses.debiased_infonce, both, _pairwise_queue_symmetric,
                   **masked),
      "hcl": _Spec(losses.hard_negative_infonce, both,
                   _pairwise_queue_symmetric, **masked),
      "simans": _Spec(losses.simans_infonce, both, _sampled, **masked,
                      uses_rng=True),
      "moco_filtered": _Spec(losses.dual_view_moco, (QUEUE,), _dual_view,
                             **masked),
      "supcon": _Spec(losses.supervised_infonce, (IN_BATCH,), _supcon),
      "cclk": _Spec(losses.kernel_conditional_infonce, (IN_BATCH,),
                    _conditional),
      "decoupled_uniformity": _Spec(losses.decoupled_uniformity, (IN_BATCH,),
                                    _multi_view),
      "clusterns": _Spec(
          losses.clusterns_infonce, (IN_BATCH,), _clusterns, **masked,
          state=_StateSpec(
              _clusterns_init, _clusterns_update,
              ("num_clusters", "centroid_momentum", "start_similarity"))),
  }


LOSS_NAMES = tuple(_specs())
# The losses that take a `negative_mask` (declared by `uses_negative_mask`).
NEGATIVE_MASK_LOSSES = tuple(
    name for name, spec in _specs().items() if spec.uses_negative_mask)


def losses_for(method: str) -> tuple[str, ...]:
  """The losses that can take their negatives from `method`'s source."""
  source = methods_lib.get_method(method).negatives
  return tuple(name for name, spec in _specs().items()
               if source in spec.sources)


def check_negative_mask(loss_name: str, method: str, needed_by: str) -> None:
  """Raises ValueError unless loss `loss_name` takes a `negative_mask`.

  `needed_by` names what narrows the negatives through it (e.g. 'MCL');
  the message lists the losses that take one and `method` can use.
  """
  if loss_name in NEGATIVE_MASK_LOSSES:
    return
  usable = [n for n in NEGATIVE_MASK_LOSSES if n in losses_for(method)]
  raise ValueError(
      f"{needed_by} restricts negatives through the loss's negative_mask;"
      f" choose config.loss.name among {', '.join(usable)}.")


@dataclasses.dataclass(frozen=True)
class Objective:
  """A loss bound to its hyperparameters and to the method's negatives.

  Call it as `objective(projections, batch, negatives=None,
  negative_mask=None, state=None, rng=None) -> (loss, aux)`; a stateful loss
  (`has_state`) needs `state`, from `init_state` then `update_state`, and a
  sampling one (`uses_rng`) needs `rng`.
  """

  name: str
  method: str
  spec: _Spec
  hparams: Mapping[str, Any]
  cfg: Mapping[str, Any]
  state_hparams: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def has_state(self) -> bool:
    return self.spec.state is not None

  @property
  def uses_negative_mask(self) -> bool:
    return self.spec.uses_negative_mask

  @property
  def uses_rng(self) -> bool:
    return self.spec.uses_rng

  def init_state(self, dim: int, batch_size: int) -> Any:
    """The loss's initial state for `dim`-d projections, or None."""
    if self.spec.state is None:
      return None
    return self.spec.state.init(dim, batch_size, **self._state_kwargs("init"))

  def update_state(self, state: Any, proj: Projections) -> Any:
    """The state after a step that produced `proj` (no gradient)."""
    proj = dataclasses.replace(proj,
                               online=jax.lax.stop_gradient(proj.online))
    return self.spec.state.update(state, proj, **self._state_kwargs("update"))

  def _state_kwargs(self, which: str) -> dict[str, Any]:
    fn = getattr(self.spec.state, which)
    names = inspect.signature(fn).parameters
    return {k: v for k, v in self.state_hparams.items() if k in names}

  def __call__(self, proj: Projections, batch: Mapping[str, Array],
               negatives: Array | None = None,
               negative_mask: Array | None = None, state: Any = None,
               rng: Array | None = None,
               hparams: Mapping[str, Array] | None = None):
    """`hparams` replaces some of the bound hyperparameters by (traced)
    values, e.g. one temperature per member of a population."""
    if hparams:
      unknown = sorted(set(hparams) - set(self.hparams))
      if unknown:
        raise ValueError(
            f"hparams {unknown} are not hyperparameters of loss"
            f" {self.name!r}; its are: {', '.join(self.hparams)}.")
    kwargs = {}
    if self.spec.state is not None:
      if state is None:
        raise ValueError(f"loss {self.name!r} keeps state across steps; pass"
                         " state= (from init_state / update_state).")
      kwargs["state"] = state
    if self.spec.uses_rng:
      if rng is None:
        raise ValueError(f"loss {self.name!r} draws its negatives; pass rng=.")
      kwargs["rng"] = rng
    return self.spec.call(self.spec.fn, proj, batch, negatives, negative_mask,
                          self.cfg, {**self.hparams, **(hparams or {})},
                          **kwargs)


def build_objective(loss_config: Mapping[str, Any], method: str) -> Objective:
  """Validates `config.loss` and `config.method` at start-up.

  Raises:
    ValueError: unknown loss or method name (listing the valid ones), a loss
      that the method cannot use, or a hyperparameter the loss does not take.
  """
  cfg = dict(loss_config)
  specs = _specs()
  name = cfg.get("name")
  if name not in specs:
    raise ValueError(
        f"Unknown loss {name!r} (config.loss.name); valid losses:"
        f" {', '.join(specs)}."
    )
  source = methods_lib.get_method(method).negatives
  spec = specs[name]
  if source not in spec.sources:
    raise ValueError(
        f"loss {name!r} cannot be used with method {method!r}; it supports"
        f" {', '.join(methods_lib.methods_from(spec.sources))}."
    )
  if cfg.get("condition", "representation") not in CONDITIONS:
    raise ValueError(
        f"Unknown condition {cfg['condition']!r} (config.loss.condition);"
        f" valid values: {', '.join(CONDITIONS)}."
    )
  state_fields = spec.state.fields if spec.state is not None else ()
  state_hparams = {k: v for k, v in cfg.items() if k in state_fields}
  hparams = {k: v for k, v in cfg.items()
             if k not in _ADAPTER_FIELDS and k not in state_fields}
  accepted = [
      p.name for p in inspect.signature(spec.fn).parameters.values()
      if p.kind == inspect.Parameter.KEYWORD_ONLY
      and p.name not in ("negatives", "negative_mask", "active")
  ] + list(state_fields)
  config_sections.check_fields(hparams, accepted,
                               f"config.loss (loss {name!r})",
                               phrase="fields the loss does not take:")
  _check_positive_hparams(name, hparams)
  return Objective(name=name, method=method, spec=spec, hparams=hparams,
                   cfg=cfg, state_hparams=state_hparams)


# Hyperparameters that must be > 0 wherever a loss takes them. The losses
# check them too, but only when the first step is traced (after building the
# data pipeline and the model); checking here fails at start-up.
_POSITIVE = ("temperature", "kernel_scale", "lam")


def _check_positive_hparams(name: str, hparams: Mapping[str, Any]) -> None:
  for field in _POSITIVE:
    value = hparams.get(field)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (
        not value > 0):
      raise ValueError(
          f"config.loss.{field} must be > 0 for loss {name!r}, got {value}.")
