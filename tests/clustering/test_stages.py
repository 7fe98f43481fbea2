"""MCL's state and negative masks against a NumPy construction."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.clustering import mcl as mcl_lib
from contrastive.clustering import stages
from contrastive.negatives import queue as queue_lib
from contrastive.train import objectives

N, S, K = 40, 3, 3


def _state_at(stage: int, seed: int = 0) -> tuple[stages.MCLState, np.ndarray]:
  """An MCLState in `stage` whose finished stages have random clusters."""
  rng = np.random.default_rng(seed)
  assignments = rng.integers(0, K, (N, S - 1))
  state = stages.init_mcl_state(N, S, {"params": {"w": jnp.zeros((2, 3))}})
  for s in range(1, stage):
    state = stages.record_stage(state, assignments[:, s - 1],
                                {"params": {"w": jnp.full((2, 3), s)}})
  return state, assignments


def _numpy_mask(assignments, stage, anchors, candidates, base, min_count,
                fallback):
  """Allowed iff the base allows it, the candidate is known and the two
  examples share their cluster in every finished stage; rows with fewer
  than `min_count` allowed fall back to the base row ('all')."""
  n, k = len(anchors), len(candidates)
  base = np.broadcast_to(base, (n, k))
  mask = np.zeros((n, k), bool)
  for i, a in enumerate(anchors):
    for j, c in enumerate(candidates):
      same = c >= 0 and all(assignments[a, t] == assignments[c, t]
                            for t in range(stage - 1))
      mask[i, j] = base[i, j] and same
  short = mask.sum(1) < min_count
  if fallback == "all":
    mask[short] = base[short]
  return mask, short & (fallback == "all")


@pytest.mark.parametrize("stage", [1, 2, 3])
@pytest.mark.parametrize("fallback", ["all", "none"])
def test_in_batch_mask_matches_numpy(stage, fallback):
  state, assignments = _state_at(stage)
  index = np.random.default_rng(1).choice(N, 16, replace=False)
  base = ~np.eye(16, dtype=bool)
  ids = stages.stage_ids(state, jnp.asarray(index))
  mask, fell = jax.jit(stages.restricted_mask, static_argnames=(
      "min_negatives", "fallback"))(ids, ids, jnp.asarray(base),
                                    min_negatives=2, fallback=fallback)
  want, want_fell = _numpy_mask(assignments, stage, index, index, base, 2,
                                fallback)
  np.testing.assert_array_equal(np.asarray(mask), want)
  np.testing.assert_array_equal(np.asarray(fell), want_fell)
  if stage == 1:  # nothing finished: the restriction allows everything
    np.testing.assert_array_equal(want, base)
  if stage == 3 and fallback == "none":
    assert not want.all() and want.any()  # the rule really restricts


def test_queue_mask_matches_numpy_through_row_indices():
  state, assignments = _state_at(3, seed=2)
  rng = np.random.default_rng(3)
  anchors = rng.choice(N, 8, replace=False)
  rows = rng.choice(N, 24)
  rows[:5] = queue_lib.UNKNOWN             # never-written queue rows
  valid = rows >= 0
  ids = stages.stage_ids(state, jnp.asarray(anchors))
  cand = stages.stage_ids(state, jnp.asarray(rows))
  mask, _ = stages.restricted_mask(ids, cand, jnp.asarray(valid),
                                   min_negatives=3)
  want, _ = _numpy_mask(assignments, 3, anchors, rows, valid, 3, "all")
  np.testing.assert_array_equal(np.asarray(mask), want)
  assert not np.asarray(mask)[:, :5].any()


def test_rule_uses_queue_metadata_index():
  state, assignments = _state_at(2, seed=4)
  queue = queue_lib.init_queue(8, 4, metadata=("index", "label"))
  keys = jnp.ones((8, 4))
  rows = np.arange(8, 16)
  queue = queue_lib.enqueue(queue, keys, index=rows, label=np.zeros(8, int))
  batch = {"index": jnp.arange(4)}
  rule = mcl_lib.ClusterNegatives(min_negatives=0, fallback="none")
  mask, metrics = rule({"mcl": state}, batch, queue, queue.valid)
  want = assignments[:4, 0][:, None] == assignments[rows, 0][None, :]
  np.testing.assert_array_equal(np.asarray(mask), want)
  assert float(metrics["mcl_stage"]) == 2.0


def test_record_stage_fills_columns_and_encoder_slots():
  state, assignments = _state_at(1)
  assert state.assignments.shape == (N, S - 1)
  assert np.all(np.asarray(state.assignments) == -1)
  state = stages.record_stage(state, assignments[:, 0],
                              {"params": {"w": jnp.full((2, 3), 7.0)}})
  assert int(state.stage) == 2
  np.testing.assert_array_equal(np.asarray(state.assignments[:, 0]),
                                assignments[:, 0])
  assert np.all(np.asarray(state.assignments[:, 1]) == -1)
  (first,) = stages.finished_encoders(state)
  np.testing.assert_array_equal(np.asarray(first["params"]["w"]), 7.0)
  assert state.encoders["params"]["w"].shape == (S - 1, 2, 3)


def test_record_stage_errors():
  state, assignments = _state_at(3)
  with pytest.raises(ValueError, match="last of 3"):
    stages.record_stage(state, assignments[:, 0], {"params": {}})
  state, _ = _state_at(1)
  with pytest.raises(ValueError, match=r"assignments must be \[40\]"):
    stages.record_stage(state, np.zeros(5, int),
                        {"params": {"w": jnp.zeros((2, 3))}})


def test_input_errors():
  state, _ = _state_at(2)
  with pytest.raises(ValueError, match="integer"):
    stages.stage_ids(state, jnp.zeros(3))
  ids = stages.stage_ids(state, jnp.arange(3))
  with pytest.raises(ValueError, match="Unknown MCL fallback 'some'"):
    stages.restricted_mask(ids, ids, jnp.ones(3, bool), fallback="some")
  with pytest.raises(ValueError, match="min_negatives must be >= 0"):
    stages.restricted_mask(ids, ids, jnp.ones(3, bool), min_negatives=-1)
  with pytest.raises(ValueError, match="one per stage"):
    stages.num_clusters_per_stage((4, 5), 2)
  assert stages.num_clusters_per_stage(4, 3) == (4, 4)


def test_config_errors():
  parse = mcl_lib.parse_config
  with pytest.raises(ValueError, match="unknown fields.*num_stages"):
    parse({"stages": 2}, default_steps=4)
  # Whether the loss takes a negative_mask is the loss table's to say.
  with pytest.raises(ValueError, match="negative_mask.*infonce"):
    objectives.check_negative_mask("supcon", "simclr", "MCL")
  with pytest.raises(ValueError, match="cluster_output.*features"):
    parse({"cluster_output": "logits"}, default_steps=4)
  cfg = parse({"num_stages": 3, "num_clusters": (2, 5)}, default_steps=4)
  assert cfg.num_steps == 12 and cfg.stage_end(2) == 8
  assert cfg.num_clusters == (2, 5)
