"""Tests of the 1-D ResNet IMU encoder ('rbg' keys: fast init on CPU)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import sensor


def _key(seed: int = 0) -> jax.Array:
  return jax.random.key(seed, impl="rbg")


def _count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _expected_count(width, depth, blocks, k, channels):
  total = k * channels * width + 2 * width
  c_in = width
  for i in range(depth):
    c = width * 2**i
    for _ in range(blocks):
      total += k * c_in * c + 2 * c + k * c * c + 2 * c
      if c_in != c:  # (the strided first block of stage > 1 changes width)
        total += c_in * c + 2 * c
      c_in = c
  return total


def test_param_count_full_size():
  model = sensor.ResNet1D()
  shapes = jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False),
      jax.ShapeDtypeStruct((1, 128, 6), jnp.float32),
  )
  assert _count(shapes["params"]) == _expected_count(64, 3, 2, 5, 6)
  assert model.num_features == 256


@pytest.fixture(scope="module")
def setup():
  model = sensor.ResNet1D(width=4, depth=2, blocks_per_stage=1, kernel_size=3)
  x = jax.random.normal(_key(1), (3, 16, 6)) + 2.0
  return model, x, model.init(_key(), x, train=False)


def test_output_shapes_and_batchnorm(setup):
  model, x, variables = setup
  out_eval = model.apply(variables, x, train=False)
  out_train, state = model.apply(variables, x, train=True,
                                 mutable=["batch_stats"])
  assert out_eval.shape == out_train.shape == (3, 8)
  _, eval_state = model.apply(variables, x, train=False,
                              mutable=["batch_stats"])
  before = variables["batch_stats"]["stem_bn"]["mean"]
  np.testing.assert_array_equal(eval_state["batch_stats"]["stem_bn"]["mean"],
                                before)
  assert not np.allclose(state["batch_stats"]["stem_bn"]["mean"], before)


def test_eval_is_per_example_and_time_length_free(setup):
  model, x, variables = setup
  full = model.apply(variables, x, train=False)
  np.testing.assert_allclose(model.apply(variables, x[1:2], train=False),
                             full[1:2], rtol=1e-5, atol=1e-6)
  # Convolutions and average pooling accept another window length.
  assert model.apply(variables, x[:, :10], train=False).shape == (3, 8)


def test_bfloat16_activations_float32_params():
  model = sensor.ResNet1D(width=4, depth=1, blocks_per_stage=1,
                          dtype=jnp.bfloat16)
  x = jnp.ones((2, 8, 6))
  variables = model.init(_key(), x, train=False)
  assert model.apply(variables, x, train=False).dtype == jnp.bfloat16
  for leaf in jax.tree.leaves(variables):
    assert leaf.dtype == jnp.float32


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="kernel_size"):
    sensor.ResNet1D(kernel_size=0)
  with pytest.raises(ValueError, match="bn_epsilon"):
    sensor.ResNet1D(bn_epsilon=0.0)
  with pytest.raises(ValueError, match="rank 3"):
    sensor.ResNet1D(width=4, depth=1).init(_key(), jnp.zeros((2, 128)),
                                           train=False)
