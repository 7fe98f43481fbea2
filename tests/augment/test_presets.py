"""Tests of build_augment presets and make_views on tiny batches."""
from __future__ import annotations

import math

import jax
import ml_collections
import numpy as np
import pytest

from contrastive.augment import build_augment
from contrastive.augment import make_views
from contrastive.augment import presets

KEY = jax.random.PRNGKey(0)


# Built once and reused, so that tests share compilations.
AUGMENTS = {name: build_augment({"name": name})
            for name in ("simclr", "byol", "none")}
_COMPILED = {}


def _views(augment, batch, rng=KEY, num_views=2):
  """jit(make_views), compiled once per (augment, num_views)."""
  cache_key = (id(augment), num_views)
  if cache_key not in _COMPILED:
    _COMPILED[cache_key] = (augment, jax.jit(
        lambda r, x: make_views(r, x, augment, num_views=num_views)))
  return np.asarray(_COMPILED[cache_key][1](rng, batch))


def _images(shape=(3, 8, 8, 3), seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("name", ["simclr", "byol", "none"])
def test_image_presets_shape_dtype_range(name):
  batch = _images()
  augment = AUGMENTS[name]
  views = _views(augment, batch)
  assert views.shape == (2, 3, 8, 8, 3) and views.dtype == np.float32
  assert views.min() >= 0.0 and views.max() <= 1.0
  if name == "none":
    np.testing.assert_allclose(views[0], batch / 255.0, atol=1e-6)
    np.testing.assert_array_equal(views[0], views[1])
  else:
    assert not np.allclose(views[0], views[1])
  assert augment.spec_transform is None


def test_views_are_a_pure_function_of_the_key():
  augment = AUGMENTS["simclr"]
  batch = np.repeat(_images((1, 8, 8, 3)), 3, axis=0)  # identical examples
  first = _views(augment, batch)
  np.testing.assert_array_equal(first, _views(augment, batch))
  assert not np.allclose(first, _views(augment, batch,
                                       rng=jax.random.PRNGKey(1)))
  # Each example of a view has its own key, even for identical inputs.
  assert not np.allclose(first[0, 0], first[0, 1])


def test_gray_images_resizing_and_config_dict():
  batch = _images((2, 28, 28, 1))
  config = ml_collections.ConfigDict({"name": "mocov2", "image_size": 16})
  augment = build_augment(config)
  assert augment.params[0]["crop_scale"] == (0.2, 1.0)
  assert augment.params[0]["blur_prob"] == 0.5
  views = _views(augment, batch)
  assert views.shape == (2, 2, 16, 16, 1) and views.dtype == np.float32
  assert views.min() >= 0.0 and views.max() <= 1.0
  assert not np.allclose(views[0], views[1])


def test_byol_views_get_their_own_parameters():
  augment = AUGMENTS["byol"]
  assert len(augment.view_fns) == 2
  assert [p["blur_prob"] for p in augment.params] == [1.0, 0.1]
  assert [p["solarize_prob"] for p in augment.params] == [0.0, 0.2]
  assert augment.params[0]["saturation"] == 0.2
  # Per-view tuples split into per-view params; scalars are shared.
  custom = build_augment({"name": "byol", "solarize_prob": (0.0, 1.0),
                          "blur_prob": (0.0, 0.0), "flip_prob": 0.3})
  assert [p["solarize_prob"] for p in custom.params] == [0.0, 1.0]
  assert [p["flip_prob"] for p in custom.params] == [0.3, 0.3]
  assert custom.params[0]["crop_scale"] == (0.08, 1.0)
  # ... and reach the pipeline each view function calls.
  assert [f.keywords["solarize_prob"] for f in custom.view_fns] == [0.0, 1.0]


def test_make_views_gives_view_v_the_function_of_view_v_mod_n():
  # Cheap stand-ins for two asymmetric pipelines: view v must come from
  # view_fns[v % 2], each example with its own key.
  augment = presets.Augment(
      name="test", modality="any",
      view_fns=(lambda k, x: x + jax.random.uniform(k),
                lambda k, x: -x - jax.random.uniform(k)),
      params=({}, {}))
  x = np.full((3, 2), 5.0, np.float32)
  views = _views(augment, x, num_views=5)
  assert views.shape == (5, 3, 2)
  assert np.all(views[0::2] >= 5.0) and np.all(views[1::2] <= -5.0)
  noise = np.abs(views[..., 0]) - 5.0
  assert len(np.unique(noise)) == 15  # a key per example and per view
  np.testing.assert_array_equal(views[..., 0], views[..., 1])


def test_overrides_jitter_strength_and_normalisation():
  augment = build_augment({"name": "simclr", "jitter_strength": 1.0,
                           "hue": 0.05})
  params = augment.params[0]
  assert (params["brightness"], params["contrast"], params["saturation"]) == (
      0.8, 0.8, 0.8)
  assert params["hue"] == 0.05
  simclr = build_augment({"name": "simclr"}).params[0]
  assert math.isclose(simclr["brightness"], 0.4)
  assert math.isclose(simclr["hue"], 0.1)
  mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
  plain = build_augment(ml_collections.ConfigDict(
      {"name": "none", "mean": mean, "std": std}))
  views = _views(plain, _images())
  np.testing.assert_allclose(views[0], (_images() / 255.0 - 0.5) / 0.25,
                             atol=1e-5)


def test_audio_preset_and_spec_transform():
  waves = np.random.default_rng(0).normal(size=(2, 800)).astype(np.float32)
  augment = build_augment({"name": "audio_default", "max_shift": 100})
  views = _views(augment, waves)
  assert views.shape == (2, 2, 800) and views.dtype == np.float32
  assert np.all(np.isfinite(views)) and not np.allclose(views[0], views[1])
  spec = np.random.default_rng(1).normal(size=(2, 30, 16)).astype(np.float32)
  masked = np.asarray(jax.jit(augment.spec_transform)(KEY, spec))
  assert masked.shape == spec.shape and np.any(masked != spec)
  off = build_augment({"name": "audio_default", "time_masks": 0,
                       "freq_masks": 0})
  assert off.spec_transform is None
  cropped = build_augment({"name": "audio_default", "crop_length": 400,
                           "max_shift": 100})
  shape = jax.eval_shape(lambda r, x: make_views(r, x, cropped), KEY, waves)
  assert shape.shape == (2, 2, 400)
  # 'none' passes float data through unchanged (no clipping to [0, 1]).
  np.testing.assert_array_equal(_views(AUGMENTS["none"], waves)[0], waves)


def test_sensor_preset():
  x = np.random.default_rng(0).normal(size=(2, 32, 6)).astype(np.float32)
  augment = build_augment({"name": "sensor_default"})
  views = _views(augment, x)
  assert views.shape == (2, 2, 32, 6) and views.dtype == np.float32
  assert np.all(np.isfinite(views)) and not np.allclose(views[0], views[1])
  assert augment.modality == "sensor"
  assert augment.params[0]["rotation_max_angle"] == pytest.approx(
      math.pi / 6)
  # The ops that are off by default trace too (their values are tested in
  # test_sensor.py).
  every_op = build_augment({"name": "sensor_default", "permutation_prob": 0.5,
                            "channel_mask_prob": 0.5, "rotation_max_angle":
                            None, "channel_groups": ((0, 1, 2),)})
  shape = jax.eval_shape(lambda r, v: make_views(r, v, every_op), KEY, x)
  assert shape.shape == (2, 2, 32, 6)


def test_make_views_with_a_plain_function():
  x = np.zeros((4, 5), np.float32)
  views = _views(lambda k, v: v + jax.random.normal(k, v.shape), x,
                 num_views=3)
  assert views.shape == (3, 4, 5)
  assert len({float(v[0]) for v in views.reshape(-1, 5)}) == 12


def test_errors():
  with pytest.raises(ValueError, match="valid names are: simclr, mocov2"):
    build_augment({"name": "simclr2"})
  with pytest.raises(ValueError, match="valid names"):
    build_augment({})
  with pytest.raises(ValueError, match=r"Unknown field\(s\) \['blur'\].*"
                     r"valid fields are: .*blur_prob"):
    build_augment({"name": "simclr", "blur": 0.5})
  with pytest.raises(ValueError, match="time_masks"):  # audio-only field
    build_augment({"name": "simclr", "time_masks": 1})
  with pytest.raises(ValueError, match="flip_prob must be a probability"):
    build_augment({"name": "simclr", "flip_prob": 1.5})
  with pytest.raises(ValueError, match="same number of views"):
    build_augment({"name": "byol", "blur_prob": (1.0, 0.5, 0.1)})
  with pytest.raises(ValueError, match="crop_scale"):
    build_augment({"name": "simclr", "crop_scale": (1.0, 0.5)})
  with pytest.raises(ValueError, match="shift_mode"):
    build_augment({"name": "audio_default", "shift_mode": "wrap"})
  with pytest.raises(ValueError, match="Mapping"):
    build_augment("simclr")
  augment = AUGMENTS["simclr"]
  with pytest.raises(ValueError, match="num_views"):
    make_views(KEY, _images(), augment, num_views=0)
  with pytest.raises(ValueError, match=r"simclr' \(image\) .* takes batches"):
    make_views(KEY, _images()[:, 0], augment)
  with pytest.raises(ValueError, match="rank 3"):  # the per-example check
    make_views(KEY, _images()[:, 0], lambda k, x: augment(k, x))
  assert set(presets.PRESETS) == {"simclr", "mocov2", "byol", "audio_default",
                                  "sensor_default", "none"}
