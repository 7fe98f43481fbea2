"""Tests of the MLP heads (against NumPy) and of `ContrastiveModel`."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import heads
from contrastive.models import resnet

EPS = 1e-5
MOMENTUM = 0.9


def _key(seed: int = 0) -> jax.Array:
  return jax.random.key(seed, impl="rbg")


def _randomise(tree, seed):
  """Replaces every leaf by random values; variances are kept positive."""
  rng = np.random.default_rng(seed)
  return jax.tree.map_with_path(
      lambda path, leaf: jnp.asarray(
          rng.uniform(0.5, 2.0, leaf.shape) if "var" in str(path[-1])
          else rng.standard_normal(leaf.shape), jnp.float32),
      tree,
  )


def _np_bn(h, p, s, train):
  mean, var = (h.mean(0), h.var(0)) if train else (s["mean"], s["var"])
  return (h - mean) / np.sqrt(var + EPS) * p["scale"] + p["bias"]


def _np_head(x, params, stats, train, output_bn):
  h = x @ params["dense1"]["kernel"]
  h = np.maximum(_np_bn(h, params["bn1"], stats["bn1"], train), 0.0)
  if output_bn:
    return _np_bn(h @ params["out"]["kernel"], params["out_bn"],
                  stats["out_bn"], train)
  return h @ params["out"]["kernel"] + params["out"]["bias"]


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("output_bn", [False, True])
def test_mlp_head_matches_numpy(train, output_bn):
  head = heads.MLPHead(dims=(6, 3), output_bn=output_bn,
                       bn_momentum=MOMENTUM, bn_epsilon=EPS)
  x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
  variables = _randomise(head.init(_key(), x, train=False), seed=1)
  out, state = head.apply(variables, x, train=train, mutable=["batch_stats"])
  to_np = lambda t: jax.tree.map(np.asarray, t)  # noqa: E731
  params, stats = to_np(variables["params"]), to_np(variables["batch_stats"])
  want = _np_head(x, params, stats, train, output_bn)
  np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
  assert ("out_bn" in params) == output_bn
  assert ("bias" in params["out"]) != output_bn
  # Running averages: momentum * old + (1 - momentum) * batch (biased var
  # in the batch normalisation; flax keeps the same biased var).
  h = x @ params["dense1"]["kernel"]
  new_mean = state["batch_stats"]["bn1"]["mean"]
  if train:
    np.testing.assert_allclose(
        new_mean, MOMENTUM * stats["bn1"]["mean"] + (1 - MOMENTUM) * h.mean(0),
        rtol=1e-5, atol=1e-6)
  else:
    np.testing.assert_array_equal(new_mean, stats["bn1"]["mean"])


def test_none_hidden_takes_the_input_size_and_one_layer_is_linear():
  x = jnp.ones((2, 7))
  two = heads.MLPHead(dims=(None, 3)).init(_key(), x, train=False)
  assert two["params"]["dense1"]["kernel"].shape == (7, 7)
  one = heads.MLPHead(dims=(3,)).init(_key(), x, train=False)
  assert set(one["params"]) == {"out"}


def _backbone():
  return resnet.ResNet(stage_sizes=(1,), width=4)


@pytest.fixture(scope="module")
def byol_like():
  model = heads.ContrastiveModel(backbone=_backbone(),
                                 projection_dims=(None, 8),
                                 predictor_dims=(16, 8))
  x = jax.random.uniform(_key(1), (3, 8, 8, 1))
  return model, x, model.init(_key(), x, train=False)


def test_outputs_with_predictor(byol_like):
  model, x, variables = byol_like
  out, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
  assert set(out) == {"features", "projection", "prediction"}
  assert out["features"].shape == (3, 4)
  assert out["projection"].shape == out["prediction"].shape == (3, 8)
  proj = variables["params"]["projection"]["dense1"]["kernel"]
  assert proj.shape == (4, 4)  # None hidden: the feature size F
  assert variables["params"]["predictor"]["dense1"]["kernel"].shape == (8, 16)


def test_embed_is_the_features(byol_like):
  model, x, variables = byol_like
  out = model.apply(variables, x, train=False)
  feats = model.apply(variables, x, method=heads.ContrastiveModel.embed)
  np.testing.assert_array_equal(feats, out["features"])
  backbone_only = _backbone().apply(
      {k: v["backbone"] for k, v in variables.items()}, x, train=False)
  np.testing.assert_array_equal(feats, backbone_only)


def test_gradients_reach_backbone_and_heads(byol_like):
  model, x, variables = byol_like

  def loss(params):
    out, _ = model.apply({**variables, "params": params}, x, train=True,
                         mutable=["batch_stats"])
    return jnp.sum(out["prediction"] ** 2)

  grads = jax.jit(jax.grad(loss))(variables["params"])
  for part in ("backbone", "projection", "predictor"):
    assert max(float(jnp.abs(g).max())
               for g in jax.tree.leaves(grads[part])) > 0


def test_without_predictor_and_bfloat16():
  model = heads.ContrastiveModel(
      backbone=resnet.ResNet(stage_sizes=(1,), width=4, dtype=jnp.bfloat16),
      projection_dims=(8, 8, 4), projection_output_bn=True,
      dtype=jnp.bfloat16)
  x = jnp.ones((2, 8, 8, 3), jnp.uint8)
  variables = model.init(_key(), x, train=False)
  out = model.apply(variables, x, train=False)
  assert set(out) == {"features", "projection"}
  assert out["projection"].shape == (2, 4)
  assert out["features"].dtype == out["projection"].dtype == jnp.bfloat16
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="must equal projection_dims"):
    heads.ContrastiveModel(backbone=_backbone(), projection_dims=(8, 4),
                           predictor_dims=(8, 5))
  with pytest.raises(ValueError, match="output size"):
    heads.ContrastiveModel(backbone=_backbone(), projection_dims=(8, None))
  with pytest.raises(ValueError, match="projection_dims"):
    heads.ContrastiveModel(backbone=_backbone(), projection_dims=())
  with pytest.raises(ValueError, match="sequence"):
    heads.ContrastiveModel(backbone=_backbone(), projection_dims=128)
  with pytest.raises(ValueError, match=r"dims\[0\]"):
    heads.MLPHead(dims=(-1, 4))
  model = heads.ContrastiveModel(backbone=_backbone(), projection_dims=(4,))
  with pytest.raises(ValueError, match="spec_transform"):
    model.init(_key(), jnp.zeros((1, 8, 8, 1)), train=True,
               spec_transform=lambda rng, s: s)
  with pytest.raises(ValueError, match="rank 2"):
    heads.MLPHead(dims=(4,)).init(_key(), jnp.zeros((2, 3, 4)), train=False)
