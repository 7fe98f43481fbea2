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


# Every op of each modality's pipeline switched off; the tests below turn one
# on at a time, at probability 1, and check that it does what it says.
_OFF = {
    "simclr": dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0),
                   flip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.0,
                   blur_prob=0.0, solarize_prob=0.0),
    "audio_default": dict(shift_prob=0.0, gain_prob=0.0, noise_prob=0.0),
    "sensor_default": dict(rotation_prob=0.0, scaling_prob=0.0,
                           time_warp_prob=0.0, permutation_prob=0.0,
                           jitter_prob=0.0, channel_mask_prob=0.0),
}
_INPUTS = {
    "simclr": _images(),
    "audio_default": np.random.default_rng(0).normal(
        size=(2, 400)).astype(np.float32),
    "sensor_default": np.random.default_rng(0).normal(
        size=(2, 32, 6)).astype(np.float32),
}
LUMA = np.array([0.299, 0.587, 0.114])


def _one_op(name, x=None, draws=2, **on):
  """`[draws, B, ...]`: `x` by preset `name`, every op off but those in `on`.

  The pipeline is jitted per example (unbatched image crops compile ~3x
  faster than vmapped ones) and called with a key per example and draw.
  """
  x = _INPUTS[name] if x is None else x
  augment = build_augment({"name": name, **_OFF[name], **on})
  fn = jax.jit(lambda k, v: augment(k, v))
  keys = jax.random.split(KEY, (draws, len(x)))
  return np.stack([[np.asarray(fn(keys[d, b], x[b])) for b in range(len(x))]
                   for d in range(draws)])


@pytest.mark.parametrize("name", list(_OFF))
def test_every_op_off_is_the_identity(name):
  x = _INPUTS[name]
  expected = x / 255.0 if x.dtype == np.uint8 else x
  np.testing.assert_allclose(_one_op(name), np.stack([expected] * 2),
                             atol=1e-6)


def _blur_rows_and_columns(x):
  """Gaussian blur, sigma 1, kernel 3, reflected edges, of [B, H, W, C]."""
  w = np.exp(-0.5 * np.array([1.0, 0.0, 1.0]))
  w /= w.sum()
  for axis in (1, 2):
    p = np.pad(x, [(1, 1) if a == axis else (0, 0) for a in range(4)],
               mode="reflect")
    n = x.shape[axis]
    x = sum(w[k] * np.take(p, np.arange(k, k + n), axis=axis)
            for k in range(3))
  return x


# op -> (its fields, what it makes of the batch as floats in [0, 1]).
_IMAGE_OPS = {
    "flip": (dict(flip_prob=1.0), lambda f: f[:, :, ::-1]),
    "grayscale": (dict(grayscale_prob=1.0),
                  lambda f: np.repeat(f @ LUMA[:, None], 3, axis=-1)),
    "solarize": (dict(solarize_prob=1.0, solarize_threshold=0.5),
                 lambda f: np.where(f >= 0.5, 1.0 - f, f)),
    "blur": (dict(blur_prob=1.0, blur_sigma=(1.0, 1.0), blur_kernel_size=3),
             _blur_rows_and_columns),
}


@pytest.mark.parametrize("op", list(_IMAGE_OPS))
def test_image_op_alone(op):
  fields, expected = _IMAGE_OPS[op]
  views = _one_op("simclr", **fields)
  target = expected(_INPUTS["simclr"] / 255.0)
  np.testing.assert_allclose(views, np.stack([target] * 2), atol=1e-5)
  assert not np.allclose(target, _INPUTS["simclr"] / 255.0)


def test_image_brightness_jitter_and_crop_alone():
  dark = _images() // 2 + 1  # 1..128: brightness factors <= 1.4 do not clip
  views = _one_op("simclr", dark, draws=10, jitter_prob=1.0, brightness=0.4,
                  contrast=0.0, saturation=0.0, hue=0.0)
  ratio = views / (dark / 255.0)
  factors = ratio[..., :1, :1, :1]
  np.testing.assert_allclose(ratio, np.broadcast_to(factors, ratio.shape),
                             rtol=1e-4)
  assert np.all((factors > 0.6 - 1e-5) & (factors < 1.4 + 1e-5))
  assert len(np.unique(factors.round(5))) == 30  # one per example and draw
  # A crop of a quarter of the area at size 4 is a 4 x 4 window, unscaled.
  crops = _one_op("simclr", crop_scale=(0.25, 0.25), image_size=4)
  f = _INPUTS["simclr"] / 255.0
  corners = set()
  for v, b in np.ndindex(2, 3):
    found = [(t, l) for t in range(5) for l in range(5)
             if np.allclose(crops[v, b], f[b, t:t + 4, l:l + 4], atol=1e-6)]
    assert len(found) == 1, (v, b)
    corners.add(found[0])
  assert len(corners) > 1


def test_audio_op_alone():
  x = _INPUTS["audio_default"]
  ratio = _one_op("audio_default", draws=20, gain_prob=1.0,
                  gain_db=(-6.0, 6.0)) / x
  np.testing.assert_allclose(ratio, ratio[..., :1] * np.ones_like(ratio),
                             rtol=1e-5)
  gains_db = 20 * np.log10(ratio[..., 0])  # 40 draws of U(-6, 6) dB
  assert np.all(np.abs(gains_db) <= 6.0 + 1e-4) and np.ptp(gains_db) > 9.0
  shifted = _one_op("audio_default", shift_prob=1.0, max_shift=100)
  shifts = []
  for v, b in np.ndindex(2, 2):
    found = [s for s in range(-100, 101)
             if np.array_equal(shifted[v, b], np.roll(x[b], s))]
    assert len(found) == 1, (v, b)
    shifts += found
  assert len(set(shifts)) > 1
  # 200 SNRs ~ U(10, 40) dB, each measured within ~0.2 dB (4000 samples).
  long = np.random.default_rng(1).normal(size=(2, 4000)).astype(np.float32)
  noisy = _one_op("audio_default", long, draws=100, noise_prob=1.0,
                  snr_db=(10.0, 40.0))
  snr = 10 * np.log10(np.mean(long ** 2, -1) / np.mean((noisy - long) ** 2,
                                                         -1))
  assert 9.5 < snr.min() < 11.0 and 39.0 < snr.max() < 40.5


def test_sensor_op_alone():
  x = _INPUTS["sensor_default"]
  rotated = _one_op("sensor_default", rotation_prob=1.0)
  for v, b in np.ndindex(2, 2):
    out = rotated[v, b]
    for g in ((0, 1, 2), (3, 4, 5)):
      np.testing.assert_allclose(np.linalg.norm(out[:, g], axis=1),
                                 np.linalg.norm(x[b][:, g], axis=1),
                                 rtol=1e-5)
    rot_t, *_ = np.linalg.lstsq(x[b][:, :3], out[:, :3], rcond=None)
    np.testing.assert_allclose(x[b][:, 3:] @ rot_t, out[:, 3:], atol=1e-4)
    angle = np.arccos(np.clip((np.trace(rot_t) - 1) / 2, -1, 1))
    assert 1e-3 < angle <= np.pi / 6 + 1e-4  # rotation_max_angle
  scaled = _one_op("sensor_default", scaling_prob=1.0, scaling_sigma=0.1)
  factors = scaled / x
  np.testing.assert_allclose(factors, factors[:, :, :1] * np.ones_like(x),
                             rtol=1e-4)
  assert np.all(np.abs(factors - 1) < 0.5) and np.ptp(factors) > 0.05
  noise = _one_op("sensor_default", jitter_prob=1.0, jitter_sigma=0.05) - x
  assert abs(noise.std() - 0.05) < 0.006 and abs(noise.mean()) < 0.006
  masked = _one_op("sensor_default", channel_mask_prob=1.0)
  for out in masked.reshape(4, 32, 6):
    zero = np.flatnonzero(np.all(out == 0, axis=0))
    assert tuple(zero) in ((0, 1, 2), (3, 4, 5))
  np.testing.assert_array_equal(masked[masked != 0],
                                np.broadcast_to(x, masked.shape)[masked != 0])
  # On ramps, a time warp is monotone, keeps both ends and warps every
  # channel alike; a permutation keeps every row, in at most 4 pieces.
  ramps = np.arange(32, dtype=np.float32)[None, :, None] * np.arange(
      1, 7, dtype=np.float32) * np.ones((2, 1, 1), np.float32)
  warped = _one_op("sensor_default", ramps, time_warp_prob=1.0,
                   time_warp_sigma=0.2)
  ends = np.broadcast_to(ramps, warped.shape)[..., (0, -1), :]
  np.testing.assert_allclose(warped[..., (0, -1), :], ends, atol=1e-5)
  assert np.all(np.diff(warped, axis=2) >= 0)
  np.testing.assert_allclose(warped / np.arange(1, 7), np.broadcast_to(
      warped[..., :1], warped.shape), rtol=1e-5, atol=1e-5)
  assert np.abs(warped - ramps).max() > 0.1
  permuted = _one_op("sensor_default", ramps, permutation_prob=1.0)
  np.testing.assert_array_equal(np.sort(permuted, axis=2),
                                np.broadcast_to(ramps, permuted.shape))
  steps = np.diff(permuted[..., 0], axis=-1)
  assert np.all(np.sum(steps != 1, axis=-1) <= 3) and np.any(steps != 1)


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
