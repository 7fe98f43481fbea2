"""Tests of `build_model`, `default_config` and `param_count`."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from contrastive import models
from contrastive.models import audio_cnn
from contrastive.models import resnet
from contrastive.models import sensor
from contrastive.models import vit

# Tiny settings and an input for every model name.
TINY = {
    "resnet10": ({"width": 4, "stem": "cifar_pool"}, (2, 8, 8, 1)),
    "resnet18": ({"width": 4}, (2, 8, 8, 1)),
    "resnet50": ({"width": 4, "stem": "imagenet"}, (2, 32, 32, 3)),
    "vit_tiny": ({"width": 12, "depth": 2}, (2, 8, 8, 3)),
    "vit_small": ({"width": 12, "depth": 2, "pool": "mean"}, (2, 8, 8, 3)),
    "audio_cnn": ({"width": 4, "depth": 2, "num_mel_bins": 16}, (2, 920)),
    "sensor_resnet1d": ({"width": 4, "depth": 2}, (2, 32, 6)),
}
FEATURES = {"resnet10": 32, "resnet18": 32, "resnet50": 128, "vit_tiny": 12, "vit_small": 12,
            "audio_cnn": 8, "sensor_resnet1d": 8}
BACKBONES = {"resnet10": resnet.ResNet, "resnet18": resnet.ResNet, "resnet50": resnet.ResNet,
             "vit_tiny": vit.ViT, "vit_small": vit.ViT,
             "audio_cnn": audio_cnn.AudioCNN,
             "sensor_resnet1d": sensor.ResNet1D}


def test_every_name_is_covered():
  assert set(models.MODELS) == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("train", [False, True])
def test_built_model_output_shapes(name, train):
  fields, shape = TINY[name]
  config = models.default_config(name)
  config.update(fields)
  config.projection_dims = (16, 8)
  config.predictor_dims = (None, 8)
  model = models.build_model(config)
  assert isinstance(model.backbone, BACKBONES[name])
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  variables = jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False), x
  )
  out = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=train, mutable=["batch_stats"]),
      variables, x,
  )[0]
  b = shape[0]
  assert {k: v.shape for k, v in out.items()} == {
      "features": (b, FEATURES[name]), "projection": (b, 8),
      "prediction": (b, 8)}


def test_runs_from_a_plain_dict_with_lists():
  model = models.build_model({"name": "sensor_resnet1d", "width": 4,
                              "depth": 1, "projection_dims": [8, 4]})
  assert model.projection_dims == (8, 4)
  x = jnp.ones((2, 16, 6))
  key = lambda seed: jax.random.key(seed, impl="rbg")  # noqa: E731
  variables = model.init(key(0), x, train=False)
  out = model.apply(variables, x, train=False)
  assert out["projection"].shape == (2, 4)
  assert "prediction" not in out
  # Initialisation is a function of the key.
  same = model.init(key(0), x, train=False)
  other = model.init(key(1), x, train=False)
  kernel = lambda v: v["params"]["projection"]["out"]["kernel"]  # noqa: E731
  np.testing.assert_array_equal(kernel(same), kernel(variables))
  assert not np.allclose(kernel(other), kernel(variables))


def test_fields_reach_the_modules():
  config = ml_collections.ConfigDict({
      "name": "audio_cnn", "dtype": "bfloat16", "sample_rate": 16000,
      "frame_length": 400, "frame_step": 160, "fft_length": None,
      "bn_momentum": 0.99, "projection_output_bn": True,
  })
  model = models.build_model(config)
  bb = model.backbone
  assert (bb.sample_rate, bb.frame_length, bb.frame_step, bb.fft_length) == (
      16000, 400, 160, None)
  assert bb.dtype == model.dtype == jnp.bfloat16
  assert bb.bn_momentum == model.bn_momentum == 0.99
  assert model.projection_output_bn
  vit_model = models.build_model({"name": "vit_small", "bn_epsilon": 1e-3})
  assert (vit_model.backbone.width, vit_model.backbone.num_heads) == (384, 6)
  assert vit_model.bn_epsilon == 1e-3


def test_default_config_lists_every_field():
  config = models.default_config("resnet18")
  assert config.to_dict() == {
      "name": "resnet18", "dtype": "float32", "projection_dims": (None, 128),
      "predictor_dims": None, "projection_output_bn": False,
      "bn_momentum": 0.9, "bn_epsilon": 1e-5, "width": 64, "stem": "cifar",
      "zero_init_residual": False, "conv_backward": "auto", "bn_sums": "auto",
  }
  model = models.build_model(config)
  assert (model.backbone.width, model.backbone.stem) == (64, "cifar")


def test_param_count():
  model = models.build_model({"name": "resnet18"})
  shapes = jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False),
      jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32),
  )
  assert models.param_count(shapes["params"]["backbone"]) == 11_168_832
  # Head: 512x512 (no bias) + BN 2x512 + 512x128 + 128.
  head = 512 * 512 + 2 * 512 + 512 * 128 + 128
  assert models.param_count(shapes["params"]) == 11_168_832 + head
  assert models.param_count({"a": np.zeros((2, 3)), "b": [np.ones(4)]}) == 10
  assert models.param_count({}) == 0


@pytest.mark.parametrize(
    "config,match",
    [
        ({}, "needs a 'name'"),
        ({"name": "resnet34"}, "resnet10.*sensor_resnet1d"),
        ({"name": "resnet18", "depth": 3},
         r"unknown config fields \['depth'\]"),
        ({"name": "audio_cnn", "stem": "cifar"}, "valid fields are"),
        ({"name": "resnet18", "stem": "tiny"}, "stem"),
        ({"name": "resnet18", "dtype": "float16"}, "dtype"),
        # Outside 64-bit mode float64 would silently be float32.
        ({"name": "resnet18", "dtype": "float64"}, "64-bit mode"),
        ({"name": "resnet18", "width": 0}, "width"),
        ({"name": "resnet18", "width": 8.5}, "width"),
        ({"name": "resnet18", "projection_output_bn": "yes"},
         "projection_output_bn"),
        ({"name": "resnet18", "projection_dims": (8, 4),
          "predictor_dims": (8, 2)}, "predictor_dims"),
        ({"name": "vit_tiny", "num_heads": 5}, "num_heads"),
        ({"name": "audio_cnn", "upper_edge_hertz": 9000.0},
         "upper_edge_hertz"),
        ({"name": "sensor_resnet1d", "bn_momentum": 1.5}, "bn_momentum"),
    ],
)
def test_bad_configs_raise(config, match):
  with pytest.raises(ValueError, match=match):
    models.build_model(config)


def test_bad_config_type_and_name():
  with pytest.raises(ValueError, match="Mapping"):
    models.build_model("resnet18")
  with pytest.raises(ValueError, match="valid values"):
    models.default_config("resnet101")
