"""XLA compiler options per backend, from `config.compiler`.

`config.compiler` maps a backend name (`jax.default_backend()`: 'cpu',
'gpu', 'tpu') to the XLA options (`DebugOptions` fields) that the train
step is compiled with, e.g.

    config.compiler = dict(cpu=dict(
        xla_cpu_experimental_ynn_fusion_type="LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"))

Options are passed per program (`jax.jit(..., compiler_options=...)`), not
through the process-wide `XLA_FLAGS`, so one config can carry settings for
every backend and the other backends ignore them. They select kernels and
schedules only: a config must not use them to change numerics (precision
switches belong in the model's `dtype`).
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import ml_collections


def compiler_options(config: Mapping[str, Any],
                     backend: str | None = None) -> dict[str, Any] | None:
  """The options of `config.compiler` for `backend` (default: JAX's), or
  None when there are none."""
  per_backend = config.get("compiler") or {}
  if not isinstance(per_backend, (Mapping, ml_collections.ConfigDict)):
    raise ValueError(
        "config.compiler must map a backend name ('cpu', 'gpu', 'tpu') to a"
        f" dict of XLA options, got {per_backend!r}.")
  options = per_backend.get(backend or jax.default_backend()) or {}
  return dict(options) or None
