"""Multistage contrastive learning (MCL): the per-stage state and its masks.

MCL ("Learning the Unlearned: Mitigating Feature Suppression in Contrastive
Learning") trains in stages. Stage 1 is ordinary contrastive learning; after
each stage the training set is embedded and clustered (k-means), and in stage
`s` the negatives of an anchor are only the samples that shared its cluster
in EVERY previous stage, so stage `s` must learn features that the earlier
stages did not separate. The final representation concatenates each stage's
features.

This module is pure JAX (no training loop): `MCLState` is the pytree kept in
`TrainState.extra['mcl']` (so a run resumes mid-schedule), `stage_ids` looks
up the cluster ids of examples by their dataset index, `restricted_mask`
builds the `[n, k]` negative mask with its fallback, and `record_stage`
closes a stage. `contrastive.clustering.mcl` drives them from the train loop.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.struct
import jax
import jax.numpy as jnp

from contrastive.negatives import masks

Array = jax.Array

# What an anchor with too few same-cluster negatives falls back to: every
# negative the method would use without MCL ('all'), or nothing ('none': the
# anchor keeps its short, possibly empty, restricted row).
FALLBACKS = ("all", "none")


@flax.struct.dataclass
class MCLState:
  """The MCL schedule's part of the train state.

  Attributes:
    stage: int32 scalar, the current stage, 1-based.
    assignments: `[N, S - 1]` int32, column `s - 1` the k-means cluster of
      every training example after stage `s`; -1 before that stage ended.
    encoders: the finished stages' encoder variables, each leaf stacked
      `[S - 1, ...]` (slot `s - 1` holds stage `s`'s; zeros until then).
  """

  stage: Array
  assignments: Array
  encoders: Any


def init_mcl_state(num_examples: int, num_stages: int, variables: Any
                   ) -> MCLState:
  """Stage 1, no assignments yet, `num_stages - 1` empty encoder slots.

  Args:
    num_examples: N, the size of the training split (ids are its indices).
    num_stages: S >= 1.
    variables: the encoder's variables (`{'params': ..., ...}`), the template
      of each slot.

  Example:
    >>> mcl = init_mcl_state(len(train_data), 2, {'params': params})
  """
  if num_stages < 1 or num_examples < 1:
    raise ValueError(f"num_stages and num_examples must be >= 1, got"
                     f" {num_stages} and {num_examples}.")
  slots = num_stages - 1
  return MCLState(
      stage=jnp.ones((), jnp.int32),
      assignments=jnp.full((num_examples, slots), -1, jnp.int32),
      encoders=jax.tree.map(
          lambda x: jnp.zeros((slots,) + jnp.shape(x), jnp.asarray(x).dtype),
          variables))


def stage_ids(state: MCLState, index: Array) -> Array:
  """`[b, S - 1]` cluster ids of examples `index` for the current stage.

  Columns of stages not yet finished read 0 for every known example, so they
  match everywhere and the restriction uses exactly the finished stages (in
  stage 1 it allows everything). Unknown examples (index < 0, e.g. queue rows
  never written) read -1 everywhere and match nothing.

  Args:
    state: the `MCLState`.
    index: `[b]` integer dataset indices.

  Example:
    >>> ids = stage_ids(state.extra['mcl'], batch['index'])
  """
  index = jnp.asarray(index)
  if index.ndim != 1 or not jnp.issubdtype(index.dtype, jnp.integer):
    raise ValueError(f"index must be a [b] integer array, got"
                     f" {index.dtype} {index.shape}.")
  known = index >= 0
  ids = state.assignments[jnp.where(known, index, 0)]
  finished = jnp.arange(ids.shape[1]) < state.stage - 1
  ids = jnp.where(finished[None, :], ids, 0)
  return jnp.where(known[:, None], ids, -1)


def restricted_mask(
    anchor_ids: Array,
    candidate_ids: Array,
    base_mask: Array,
    *,
    min_negatives: int = 1,
    fallback: str = "all",
) -> tuple[Array, Array]:
  """MCL's negative mask: same cluster in every finished stage, or a fallback.

  Args:
    anchor_ids: `[n, S - 1]` ids from `stage_ids`.
    candidate_ids: `[k, S - 1]` ids of the candidates (the batch itself in
      in-batch mode, the queue rows in queue mode).
    base_mask: `[n, k]` or `[k]` bool, the negatives without MCL (in-batch:
      not the anchor itself; queue: the valid rows).
    min_negatives: an anchor with fewer allowed candidates than this gets
      the fallback row (counted at sample level; in SimCLR mode each allowed
      sample gives two negative views).
    fallback: 'all' (the base mask's row) or 'none' (keep the short row).

  Returns:
    `(mask [n, k] bool, fell_back [n] bool)`.

  Example:
    >>> ids = stage_ids(mcl, batch['index'])
    >>> mask, _ = restricted_mask(ids, ids, ~jnp.eye(n, dtype=bool))
  """
  if fallback not in FALLBACKS:
    raise ValueError(f"Unknown MCL fallback {fallback!r}; valid values:"
                     f" {', '.join(FALLBACKS)}.")
  if min_negatives < 0:
    raise ValueError(f"min_negatives must be >= 0, got {min_negatives}.")
  same = masks.restrict_to_same_cluster(anchor_ids, candidate_ids)
  mask = masks.combine_masks(same, base_mask)
  too_few = jnp.sum(mask, axis=-1) < min_negatives
  if fallback == "none":
    return mask, jnp.zeros_like(too_few)
  return masks.ensure_min_negatives(mask, min_negatives, base_mask), too_few


def record_stage(state: MCLState, assignments: Array, variables: Any
                 ) -> MCLState:
  """Closes the current stage: its clusters and encoder, then the next stage.

  Args:
    state: the `MCLState` of stage `s < S`.
    assignments: `[N]` int32 k-means clusters of the training set under stage
      `s`'s encoder.
    variables: stage `s`'s encoder variables (same structure as the slots).

  Example:
    >>> mcl = record_stage(mcl, result.assignments, {'params': params})
  """
  num_slots = state.assignments.shape[1]
  s = int(state.stage)
  if not 1 <= s <= num_slots:
    raise ValueError(f"stage {s} is the last of {num_slots + 1}: there is no"
                     " stage after it to record for.")
  assignments = jnp.asarray(assignments, jnp.int32)
  if assignments.shape != state.assignments.shape[:1]:
    raise ValueError(f"assignments must be [{state.assignments.shape[0]}],"
                     f" got {assignments.shape}.")
  encoders = jax.tree.map(lambda slot, x: slot.at[s - 1].set(x),
                          state.encoders, variables)
  return state.replace(
      stage=jnp.asarray(s + 1, jnp.int32),
      assignments=state.assignments.at[:, s - 1].set(assignments),
      encoders=encoders)


def finished_encoders(state: MCLState) -> list[Any]:
  """The variables of the stages finished so far, in stage order."""
  return [jax.tree.map(lambda x, i=i: x[i], state.encoders)
          for i in range(int(state.stage) - 1)]


def num_clusters_per_stage(value: int | Sequence[int], num_stages: int
                           ) -> tuple[int, ...]:
  """k for each of the `S - 1` clusterings: one int for all, or one each."""
  values = ((value,) * (num_stages - 1) if isinstance(value, int)
            else tuple(int(v) for v in value))
  if len(values) != num_stages - 1 or any(v < 1 for v in values):
    raise ValueError(
        f"num_clusters must be an int >= 1 or {num_stages - 1} of them (one"
        f" per stage before the last), got {value!r}.")
  return values
