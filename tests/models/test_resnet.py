"""Tests of the ResNet image encoders.

Forward passes use small stage counts and 'rbg' keys: on XLA:CPU the
partitionable threefry generator makes parameter init slow to compile
(seconds per tensor), and the key's generator does not affect what is tested.
Full-size ResNet-18/50 are checked through `jax.eval_shape` only.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import resnet


def _key(seed: int = 0) -> jax.Array:
  return jax.random.key(seed, impl="rbg")


def _small(**kwargs) -> resnet.ResNet:
  """Two stages of one block: a stride-1 and a strided, projected block."""
  return resnet.ResNet(stage_sizes=(1, 1), width=4, **kwargs)


def _shapes(model, shape, dtype=jnp.float32):
  x = jax.ShapeDtypeStruct(shape, dtype)
  return jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False), x
  )


def _count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _expected_count(stage_sizes, bottleneck, width, in_channels, stem):
  """Counts conv weights and BN scale/shift from the architecture by hand."""
  bn = lambda c: 2 * c  # noqa: E731
  k = 7 if stem == "imagenet" else 3
  total = k * k * in_channels * width + bn(width)
  c_in = width
  for i, n in enumerate(stage_sizes):
    inner = width * 2**i
    c_out = inner * 4 if bottleneck else inner
    for j in range(n):
      strided = i > 0 and j == 0
      if bottleneck:
        total += c_in * inner + bn(inner) + 9 * inner * inner + bn(inner)
        total += inner * c_out + bn(c_out)
      else:
        total += 9 * c_in * c_out + bn(c_out) + 9 * c_out * c_out + bn(c_out)
      if strided or c_in != c_out:
        total += c_in * c_out + bn(c_out)
      c_in = c_out
  return total


def test_resnet18_cifar_param_count():
  params = _shapes(resnet.resnet18(stem="cifar"), (1, 32, 32, 3))["params"]
  n = _count(params)
  # 11,173,962 in the CIFAR-10 literature, less the 512*10+10 classifier.
  assert n == 11_168_832
  assert n == _expected_count((2, 2, 2, 2), False, 64, 3, "cifar")


def test_resnet50_imagenet_param_count():
  params = _shapes(resnet.resnet50(stem="imagenet"), (1, 64, 64, 3))["params"]
  n = _count(params)
  # torchvision's resnet50: 25,557,032 less the 2048*1000+1000 classifier.
  assert n == 23_508_032
  assert n == _expected_count((3, 4, 6, 3), True, 64, 3, "imagenet")


def test_param_count_follows_width_and_channels():
  params = _shapes(resnet.resnet18(width=16), (1, 28, 28, 1))["params"]
  assert _count(params) == _expected_count((2, 2, 2, 2), False, 16, 1,
                                           "cifar")


@pytest.mark.parametrize(
    "make,stem,features",
    [
        (resnet.resnet18, "cifar", 32),
        (resnet.resnet18, "imagenet", 32),
        (resnet.resnet50, "cifar", 128),
        (resnet.resnet50, "imagenet", 128),
    ],
)
def test_full_depth_output_shapes_train_and_eval(make, stem, features):
  model = make(width=4, stem=stem)
  x = jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.uint8)
  variables = _shapes(model, x.shape, x.dtype)
  out_eval = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=False), variables, x
  )
  out_train, state = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]),
      variables, x,
  )
  assert out_eval.shape == out_train.shape == (2, features)
  assert model.num_features == features
  assert jax.tree.structure(state) == jax.tree.structure(
      {"batch_stats": variables["batch_stats"]}
  )


@pytest.fixture(scope="module")
def basic():
  """A small basic-block ResNet, a batch in [0, 1) and its variables."""
  model = _small()
  x = jax.random.uniform(_key(1), (4, 8, 8, 3))
  return model, x, model.init(_key(), x, train=False)


def test_forward_train_and_eval(basic):
  model, x, variables = basic
  out_eval = model.apply(variables, x, train=False)
  out_train, _ = model.apply(variables, x, train=True,
                             mutable=["batch_stats"])
  assert out_eval.shape == out_train.shape == (4, 8) == (4,
                                                        model.num_features)
  assert np.all(np.isfinite(out_train)) and np.all(np.isfinite(out_eval))
  # Global average pooling after ReLU: features are non-negative.
  assert np.all(out_eval >= 0)
  assert not np.allclose(out_eval, out_train)


def test_bottleneck_forward(basic):
  _, x, _ = basic
  model = _small(block="bottleneck")
  variables = model.init(_key(), x, train=False)
  out, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
  assert out.shape == (4, 32) == (4, model.num_features)
  assert np.all(np.isfinite(out))
  assert variables["params"]["stage2_block1"]["proj"]["kernel"].shape == (
      1, 1, 16, 32)


def test_imagenet_stem_downsamples_by_four():
  model = _small(stem="imagenet")
  x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
  _, state = jax.eval_shape(
      lambda x: model.init_with_output(
          _key(), x, train=False, capture_intermediates=True
      ),
      x,
  )
  stage1 = state["intermediates"]["stage1_block1"]["__call__"][0]
  assert stage1.shape == (1, 8, 8, 4)


def test_cifar_pool_stem_halves_the_resolution_with_the_cifar_parameters():
  """A 2x2 max-pool after the 3x3 stem conv: the same parameters and stem
  output as 'cifar', stage 1 at half the resolution."""
  model = _small(stem="cifar_pool")
  x = jax.random.uniform(_key(2), (2, 28, 28, 1))
  variables = model.init(_key(), x, train=False)
  plain = _small(stem="cifar")
  assert jax.tree.structure(variables) == jax.tree.structure(
      plain.init(_key(), x, train=False))
  _, state = model.apply(variables, x, train=False,
                         capture_intermediates=True, mutable=["intermediates"])
  stage1 = state["intermediates"]["stage1_block1"]["__call__"][0]
  assert stage1.shape == (2, 14, 14, 4)   # 'cifar': (2, 28, 28, 4)
  stem = state["intermediates"]["stem_bn"]["__call__"][0]
  _, plain_state = plain.apply(variables, x, train=False,
                               capture_intermediates=True,
                               mutable=["intermediates"])
  np.testing.assert_allclose(
      np.asarray(plain_state["intermediates"]["stem_bn"]["__call__"][0]),
      np.asarray(stem), rtol=1e-6)
  assert plain_state["intermediates"]["stage1_block1"]["__call__"][0].shape == (
      2, 28, 28, 4)
  # ResNet-10 has one block per stage: ResNet-18's count less one block each.
  params = _shapes(resnet.resnet10(width=16), (1, 28, 28, 1))["params"]
  assert _count(params) == _expected_count((1, 1, 1, 1), False, 16, 1,
                                           "cifar")


def test_batchnorm_stats_update_only_in_train_mode(basic):
  model, x, variables = basic
  _, eval_state = model.apply(variables, x, train=False,
                              mutable=["batch_stats"])
  _, train_state = model.apply(variables, x, train=True,
                               mutable=["batch_stats"])
  before = variables["batch_stats"]["stem_bn"]["mean"]
  np.testing.assert_array_equal(eval_state["batch_stats"]["stem_bn"]["mean"],
                                before)
  after = train_state["batch_stats"]["stem_bn"]["mean"]
  assert not np.allclose(after, before)


def test_eval_mode_is_per_example_and_deterministic(basic):
  model, x, variables = basic
  full = model.apply(variables, x, train=False)
  np.testing.assert_array_equal(full, model.apply(variables, x, train=False))
  np.testing.assert_allclose(model.apply(variables, x[:1], train=False),
                             full[:1], rtol=1e-5, atol=1e-6)
  # In train mode BN uses batch statistics, so the batch matters.
  one, _ = model.apply(variables, x[:1], train=True, mutable=["batch_stats"])
  four, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
  assert not np.allclose(one[0], four[0])


def test_uint8_is_scaled_to_unit_interval(basic):
  model, _, variables = basic
  pixels = jax.random.randint(_key(1), (4, 8, 8, 3), 0, 256)
  np.testing.assert_allclose(
      model.apply(variables, pixels.astype(jnp.uint8), train=False),
      model.apply(variables, pixels.astype(jnp.float32) / 255, train=False),
      rtol=1e-5, atol=1e-6,
  )


def test_bfloat16_activations_float32_params():
  model = _small(dtype=jnp.bfloat16)
  x = jax.random.uniform(_key(1), (4, 8, 8, 3))
  variables = model.init(_key(), x, train=False)
  out, state = model.apply(variables, x, train=True, mutable=["batch_stats"])
  assert out.dtype == jnp.bfloat16
  for leaf in jax.tree.leaves((variables, state)):
    assert leaf.dtype == jnp.float32


def test_zero_init_residual_makes_blocks_identity_like():
  model = _small(zero_init_residual=True)
  variables = model.init(_key(), jnp.zeros((4, 8, 8, 3)), train=False)
  scale = variables["params"]["stage1_block1"]["BatchNorm_1"]["scale"]
  np.testing.assert_array_equal(scale, 0.0)


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="stem.*'cifar', 'cifar_pool', 'imagenet'"):
    resnet.resnet18(stem="mnist")
  with pytest.raises(ValueError, match="width"):
    resnet.resnet18(width=0)
  with pytest.raises(ValueError, match="dtype"):
    resnet.resnet18(dtype=jnp.float16)
  with pytest.raises(ValueError, match="bn_momentum"):
    resnet.resnet18(bn_momentum=1.0)
  with pytest.raises(ValueError, match="block"):
    resnet.ResNet(stage_sizes=(1,), block="dense")
  model = _small()
  with pytest.raises(ValueError, match="rank 4"):
    model.init(_key(), jnp.zeros((8, 8, 3)), train=False)
  with pytest.raises(ValueError, match="uint8"):
    model.init(_key(), jnp.zeros((1, 8, 8, 3), jnp.int32), train=False)
