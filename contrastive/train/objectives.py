"""The contrastive objective selected by name in the config.

`config.loss.name` picks a loss of `contrastive.losses`; the other fields of
`config.loss` are its hyperparameters, passed by keyword, so the config is the
single place they live. `config.method` picks where the negatives come from:
`'simclr'` (the other examples of the global batch) or `'moco'` (a queue of
keys from a momentum encoder).
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from contrastive import losses

Array = jax.Array
METHODS = ("simclr", "moco")
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
class _Spec:
  fn: Callable[..., Any]
  methods: tuple[str, ...]
  call: Callable[..., Any]


def _pairwise(fn, proj, batch, negatives, negative_mask, cfg, hparams):
  del batch, cfg
  if negatives is None:
    return fn(proj.online[0], proj.online[1], negative_mask=negative_mask,
              **hparams)
  q, k = proj.online, proj.momentum
  loss, aux = fn(q[0], k[1], negatives=negatives, negative_mask=negative_mask,
                 **hparams)
  return loss, aux


def _pairwise_queue_symmetric(fn, proj, batch, negatives, negative_mask, cfg,
                              hparams):
  """Both directions (q1 -> k2 and q2 -> k1) against the same queue."""
  loss, aux = _pairwise(fn, proj, batch, negatives, negative_mask, cfg, hparams)
  if negatives is None or not cfg.get("symmetric_queue", False):
    return loss, aux
  q, k = proj.online, proj.momentum
  loss2, aux2 = fn(q[1], k[0], negatives=negatives,
                   negative_mask=negative_mask, **hparams)
  return (loss + loss2) / 2, jax.tree.map(lambda a, b: (a + b) / 2, aux, aux2)


def _dual_view(fn, proj, batch, negatives, negative_mask, cfg, hparams):
  del batch, negative_mask, cfg
  q, k = proj.online, proj.momentum
  return fn(q[0], k[0], q[1], k[1], negatives, **hparams)


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


def _specs() -> Mapping[str, _Spec]:
  both = ("simclr", "moco")
  return {
      "infonce": _Spec(losses.infonce, both, _pairwise_queue_symmetric),
      "dcl": _Spec(losses.debiased_infonce, both, _pairwise_queue_symmetric),
      "hcl": _Spec(losses.hard_negative_infonce, both,
                   _pairwise_queue_symmetric),
      "moco_filtered": _Spec(losses.dual_view_moco, ("moco",), _dual_view),
      "supcon": _Spec(losses.supervised_infonce, ("simclr",), _supcon),
      "cclk": _Spec(losses.kernel_conditional_infonce, ("simclr",),
                    _conditional),
      "decoupled_uniformity": _Spec(losses.decoupled_uniformity, ("simclr",),
                                    _multi_view),
  }


LOSS_NAMES = tuple(_specs())


@dataclasses.dataclass(frozen=True)
class Objective:
  """A loss bound to its hyperparameters and to the method's negatives.

  Call it as `objective(projections, batch, negatives=None,
  negative_mask=None) -> (loss, aux)`.
  """

  name: str
  method: str
  spec: _Spec
  hparams: Mapping[str, Any]
  cfg: Mapping[str, Any]

  def __call__(self, proj: Projections, batch: Mapping[str, Array],
               negatives: Array | None = None,
               negative_mask: Array | None = None):
    return self.spec.call(self.spec.fn, proj, batch, negatives, negative_mask,
                          self.cfg, dict(self.hparams))


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
  if method not in METHODS:
    raise ValueError(
        f"Unknown method {method!r} (config.method); valid methods:"
        f" {', '.join(METHODS)}."
    )
  spec = specs[name]
  if method not in spec.methods:
    raise ValueError(
        f"loss {name!r} cannot be used with method {method!r}; it supports"
        f" {', '.join(spec.methods)}."
    )
  if cfg.get("condition", "representation") not in CONDITIONS:
    raise ValueError(
        f"Unknown condition {cfg['condition']!r} (config.loss.condition);"
        f" valid values: {', '.join(CONDITIONS)}."
    )
  hparams = {k: v for k, v in cfg.items() if k not in _ADAPTER_FIELDS}
  accepted = [
      p.name for p in inspect.signature(spec.fn).parameters.values()
      if p.kind == inspect.Parameter.KEYWORD_ONLY
      and p.name not in ("negatives", "negative_mask")
  ]
  unknown = sorted(set(hparams) - set(accepted))
  if unknown:
    raise ValueError(
        f"config.loss has fields {unknown} that loss {name!r} does not take;"
        f" its hyperparameters are: {', '.join(accepted)}."
    )
  return Objective(name=name, method=method, spec=spec, hparams=hparams,
                   cfg=cfg)
