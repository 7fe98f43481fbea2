"""The train state: everything a run needs to continue exactly."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class TrainState:
  """A pytree of the whole training state, checkpointed as one item.

  Attributes:
    step: int32 scalar, the number of optimizer steps taken.
    params: the online encoder's parameters.
    batch_stats: its BatchNorm statistics (an empty dict when it has none).
    opt_state: the optimizer's state.
    rng: the uint32 PRNG key that the next step splits.
    momentum_params: the momentum (key) encoder's parameters, an EMA of
      `params` (MoCo); None for methods without one.
    momentum_batch_stats: the key encoder's own BatchNorm statistics.
    queue: the negative queue (`contrastive.negatives.queue`), or None.
    extra: method-specific state, a dict: 'loss' (a stateful loss's, e.g.
      ClusterNS's `CentroidState`), 'mcl' (`clustering.stages.MCLState`),
      'balanced_clusters' (`[N]` int32 clusters of balanced batches).
  """

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  momentum_params: Any = None
  momentum_batch_stats: Any = None
  queue: Any = None
  extra: Any = flax.struct.field(default_factory=dict)
