"""Tests of the Vision Transformer encoder ('rbg' keys: fast init on CPU)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import vit


def _key(seed: int = 0) -> jax.Array:
  return jax.random.key(seed, impl="rbg")


def _count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _expected_count(width, depth, mlp, patch, channels, tokens):
  """Patch embedding, cls + positions, blocks and final LN, by hand."""
  embed = patch * patch * channels * width + width
  attention = 4 * (width * width + width)  # q, k, v, out with biases
  block = 2 * (2 * width) + attention + (width * mlp + mlp) + (mlp * width
                                                                + width)
  return embed + width + tokens * width + depth * block + 2 * width


def test_vit_tiny_param_count():
  model = vit.vit_tiny(patch_size=4)
  shapes = jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False),
      jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32),
  )
  n = _count(shapes["params"])
  assert n == _expected_count(192, 12, 768, 4, 3, 64 + 1)
  assert 5.3e6 < n < 5.5e6  # ViT-Ti: about 5.4 M with 65 tokens


def _small(**kwargs) -> vit.ViT:
  return vit.ViT(**{"patch_size": 4, "width": 8, "depth": 1, "num_heads": 2,
                    **kwargs})


@pytest.fixture(scope="module")
def with_dropout():
  model = _small(dropout_rate=0.5)
  x = jax.random.uniform(_key(1), (3, 8, 8, 3))
  return model, x, model.init(_key(), x, train=False)


def test_output_shapes_and_dropout_only_in_train(with_dropout):
  model, x, variables = with_dropout
  assert "batch_stats" not in variables
  assert variables["params"]["pos_embed"].shape == (1, 4 + 1, 8)  # + cls
  out_eval = model.apply(variables, x, train=False)
  a = model.apply(variables, x, train=True, rngs={"dropout": _key(2)})
  b = model.apply(variables, x, train=True, rngs={"dropout": _key(3)})
  assert out_eval.shape == a.shape == (3, 8) == (3, model.num_features)
  assert not np.allclose(a, b)
  assert not np.allclose(a, out_eval)
  np.testing.assert_array_equal(out_eval,
                                model.apply(variables, x, train=False))
  # Without dropout, train and eval modes agree (no BatchNorm in a ViT).
  np.testing.assert_allclose(
      _small().apply(variables, x, train=True), out_eval, rtol=1e-6
  )


def test_eval_is_per_example(with_dropout):
  model, x, variables = with_dropout
  full = model.apply(variables, x, train=False)
  np.testing.assert_allclose(model.apply(variables, x[:1], train=False),
                             full[:1], rtol=1e-5, atol=1e-6)


def test_mean_pool_has_no_class_token():
  model = _small(pool="mean")
  x = jnp.ones((3, 8, 8, 3))
  variables = model.init(_key(), x, train=False)
  assert "cls_token" not in variables["params"]
  assert variables["params"]["pos_embed"].shape == (1, 4, 8)
  assert model.apply(variables, x, train=False).shape == (3, 8)


def test_bfloat16_activations_float32_params():
  model = _small(dtype=jnp.bfloat16)
  x = jnp.ones((3, 8, 8, 3), jnp.uint8)
  variables = model.init(_key(), x, train=False)
  assert model.apply(variables, x, train=False).dtype == jnp.bfloat16
  for leaf in jax.tree.leaves(variables):
    assert leaf.dtype == jnp.float32


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="num_heads"):
    vit.ViT(width=10, num_heads=3)
  with pytest.raises(ValueError, match="pool"):
    vit.ViT(pool="max")
  with pytest.raises(ValueError, match="dropout_rate"):
    vit.ViT(dropout_rate=1.0)
  model = _small(patch_size=3)
  with pytest.raises(ValueError, match="multiple of patch_size"):
    model.init(_key(), jnp.zeros((1, 8, 8, 3)), train=False)
  with pytest.raises(ValueError, match="rank 4"):
    model.init(_key(), jnp.zeros((1, 9, 9)), train=False)
