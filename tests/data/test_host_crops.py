"""Host crops of the whole image: the sampling law, a NumPy reference, and
the same views on resumption, on 2 processes and from worker processes."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from benchmarks import make_synthetic_imagenet as synthetic
from contrastive.augment import presets
from contrastive.data import host_crops
from contrastive.data import image_ops
from contrastive.data import image_folder
from contrastive.data import iterator as iterator_lib
from contrastive.data import prefetch


def _boxes(spec, height, width, n, seed=0, epoch=0):
  return np.array([b for i in range(n) for b in host_crops.view_boxes(
      spec, seed, epoch, i, height, width)], np.float64)


def _law(spec, height, width, bins_a, bins_r, grid=800):
  """Expected histograms of (area fraction, log ratio) of the accepted box:
  uniform area fraction and log ratio, conditioned on the box fitting in
  the image (the first fitting of iid attempts has exactly that law), by
  integration over a fine grid of the unit square (not by sampling)."""
  u = (np.arange(grid) + 0.5) / grid
  a = spec.scale[0] + (spec.scale[1] - spec.scale[0]) * u[:, None]
  lo, hi = math.log(spec.ratio[0]), math.log(spec.ratio[1])
  rho = lo + (hi - lo) * u[None, :]
  area = a * height * width
  fits = ((np.sqrt(area * np.exp(rho)) <= width)
          & (np.sqrt(area / np.exp(rho)) <= height))
  a_all = np.broadcast_to(a, fits.shape)[fits]
  r_all = np.broadcast_to(rho, fits.shape)[fits]
  p_a = np.histogram(a_all, bins_a)[0] / fits.sum()
  p_r = np.histogram(r_all, bins_r)[0] / fits.sum()
  # When every attempt fails: the centred box, its ratio clamped.
  p_fail = (1 - fits.mean()) ** spec.attempts
  _, _, h, w = host_crops.sample_box(np.full(2 * spec.attempts + 2, 0.9999),
                                     height, width, scale=(1.0, 1.0),
                                     ratio=spec.ratio, attempts=spec.attempts)
  if np.all(fits[-1]):  # the largest boxes fit: no fallback possible
    p_fail = 0.0
  fall_a = np.histogram([h * w / (height * width)], bins_a)[0]
  fall_r = np.histogram([math.log(w / h)], bins_r)[0]
  return ((1 - p_fail) * p_a + p_fail * fall_a,
          (1 - p_fail) * p_r + p_fail * fall_r)


@pytest.mark.parametrize("preset,shape", [
    ("simclr", (1500, 2000)), ("mocov2", (1500, 2000)),
    ("mocov2", (1800, 1800)), ("simclr", (1000, 2400))])
def test_crops_follow_the_presets_law(preset, shape):
  """Area fraction and aspect-ratio histograms of 12,000 host boxes against
  the preset's law (chi-square), boxes placed over the whole image."""
  params = presets.build_augment(
      {"name": preset, "image_size": 224, "crop_on": "host"}
  ).host_crop_params()
  spec = host_crops.CropSpec(**params, num_views=2)
  height, width = shape
  boxes = _boxes(spec, height, width, 6000)
  top, left, h, w = boxes.T
  assert np.all((top >= 0) & (left >= 0) & (top + h <= height)
                & (left + w <= width))
  frac = h * w / (height * width)
  log_ratio = np.log(w / h)
  bins_a = np.linspace(*spec.scale, 13)
  bins_r = np.linspace(math.log(spec.ratio[0]), math.log(spec.ratio[1]), 13)
  # Rounding the sides to pixels moves a box by < 1 pixel: widen the end
  # bins by that much.
  bins_a[0], bins_a[-1] = 0.0, 1.01
  bins_r[0], bins_r[-1] = -1.0, 1.0
  p_a, p_r = _law(spec, height, width, bins_a, bins_r)
  for observed, expected in ((np.histogram(frac, bins_a)[0], p_a),
                             (np.histogram(log_ratio, bins_r)[0], p_r)):
    keep = expected > 0
    assert observed[~keep].sum() == 0
    result = stats.chisquare(observed[keep],
                             expected[keep] * observed[keep].sum())
    assert result.pvalue > 1e-3, (observed, expected * len(frac))
  # Positions: uniform over where the box fits, so every edge is reached.
  slack_v, slack_h = height - h, width - w
  for pos, slack in ((top, slack_v), (left, slack_h)):
    rel = pos[slack > 0] / slack[slack > 0]
    assert stats.kstest(rel, "uniform").pvalue > 1e-3
  assert top.min() == 0 and left.min() == 0
  assert (top + h).max() == height and (left + w).max() == width


def _reference_box(u, height, width, scale, ratio, attempts):
  """torchvision's RandomResizedCrop.get_params, written as a loop over
  the same uniforms (u[:n] areas, u[n:2n] log ratios, u[-2:] offsets)."""
  area = height * width
  for k in range(attempts):
    target = area * (scale[0] + (scale[1] - scale[0]) * u[k])
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])
                                  ) * u[attempts + k]
    aspect = math.exp(log_r)
    w = int(np.round(math.sqrt(target * aspect)))
    h = int(np.round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      top = int(math.floor(u[-2] * (height - h + 1)))
      left = int(math.floor(u[-1] * (width - w + 1)))
      return top, left, h, w
  in_ratio = width / height
  if in_ratio < min(ratio):
    w, h = width, int(round(w / min(ratio)))
  elif in_ratio > max(ratio):
    h = height
    w = int(round(h * max(ratio)))
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


def test_boxes_equal_a_numpy_reference_on_fixed_keys():
  spec = host_crops.CropSpec(224, scale=(0.08, 1.0))
  for (height, width) in ((375, 500), (500, 333), (90, 700), (64, 64)):
    for index in range(200):
      for view in range(2):
        u = np.random.default_rng(
            [host_crops.TAG, 7, 3, index, view]).random(22)
        expected = _reference_box(u, height, width, spec.scale, spec.ratio,
                                  10)
        got = host_crops.view_boxes(spec, 7, 3, index, height, width)[view]
        assert got == expected, (height, width, index, view)
  # A fixed key gives fixed boxes (any change of the law shows here).
  assert host_crops.view_boxes(spec, 0, 0, 0, 375, 500) == [
      tuple(b) for b in _fixed_boxes()]


def _fixed_boxes():
  out = []
  for view in range(2):
    u = np.random.default_rng([host_crops.TAG, 0, 0, 0, view]).random(22)
    out.append(_reference_box(u, 375, 500, (0.08, 1.0), (3 / 4, 4 / 3), 10))
  return out


def test_fallback_is_the_centred_clamped_box():
  u = np.ones(22) * 0.999  # every attempt too large for a 1:8 strip
  assert host_crops.sample_box(u, 800, 100, scale=(0.9, 1.0),
                               ratio=(3 / 4, 4 / 3), attempts=10) == (
                                   (800 - 133) // 2, 0, 133, 100)


def test_pixels_equal_a_numpy_reference(tmp_path):
  """PNG (no DCT scaling): each view is the box resampled by the NumPy
  antialiased bilinear resize, within one grey level."""
  rng = np.random.default_rng(0)
  pixels = synthetic.synthetic_image(rng, 300, 220)
  path = tmp_path / "a.png"
  Image.fromarray(pixels).save(path)
  spec = host_crops.CropSpec(48, scale=(0.08, 1.0), num_views=4)
  views = host_crops.decode_train_views(str(path), spec, seed=1, epoch=2,
                                        index=5)
  assert views.shape == (4, 48, 48, 3) and views.dtype == np.uint8
  boxes = host_crops.view_boxes(spec, 1, 2, 5, 220, 300)
  for view, (top, left, h, w) in zip(views, boxes):
    expected = image_ops.resize(pixels[top:top + h, left:left + w], 48, 48)
    diff = np.abs(view.astype(int) - expected.astype(int))
    assert diff.max() <= 1, diff.max()
  # Evaluation: short side to 64 and the centre 48 crop, done as one
  # resampling of the centred box (side 240 * 48 / 64 = 180 pixels).
  pixels = synthetic.synthetic_image(rng, 320, 240)
  Image.fromarray(pixels).save(path)
  evaluated = host_crops.decode_eval(str(path), host_crops.EvalSpec(48, 64))
  assert host_crops.eval_box(240, 320, host_crops.EvalSpec(48, 64)) == (
      30, 70, 180, 180)
  expected = image_ops.resize(pixels[30:210, 70:250], 48, 48)
  assert np.abs(evaluated.astype(int) - expected.astype(int)).max() <= 1


def test_jpeg_dct_scaling_when_the_crop_allows(tmp_path):
  rng = np.random.default_rng(1)
  pixels = synthetic.synthetic_image(rng, 1600, 1200)
  path = tmp_path / "big.jpg"
  Image.fromarray(pixels).save(path, quality=95)
  spec = host_crops.CropSpec(64, scale=(0.5, 1.0), num_views=2)
  boxes = host_crops.view_boxes(spec, 0, 0, 0, 1200, 1600)
  assert host_crops.reduction(boxes, (64, 64)) >= 4
  fast = host_crops.decode_train_views(str(path), spec, seed=0, epoch=0,
                                       index=0)
  full = host_crops.decode_train_views(
      str(path), host_crops.CropSpec(64, scale=(0.5, 1.0), draft=False),
      seed=0, epoch=0, index=0)
  diff = np.abs(fast.astype(int) - full.astype(int))
  assert diff.mean() < 2.0 and np.percentile(diff, 99) < 12
  # A small crop keeps the full decode: reduction 1.
  assert host_crops.reduction([(0, 0, 100, 100)], (64, 64)) == 1


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  root = tmp_path_factory.mktemp("folder")
  synthetic.write_folder(root, train=14, val=4, classes=3, png_every=5,
                         size_fn=lambda rng: (int(rng.integers(40, 90)),
                                              int(rng.integers(40, 90))))
  return root


def _train(folder, **kwargs):
  ds = image_folder.ImageFolderDataset(folder, "train", image_size=24,
                                       eval_resize=28, cache_dir="")
  return ds.with_host_crops(host_crops.CropSpec(24, **kwargs))


def _run(it, n):
  return [next(it) for _ in range(n)]


def test_resumed_run_sees_the_same_views(folder):
  ds = _train(folder, scale=(0.2, 1.0))
  whole = _run(iterator_lib.BatchIterator(ds, 4, seed=3), 7)  # 2+ epochs
  first = iterator_lib.BatchIterator(ds, 4, seed=3)
  part = _run(first, 3)
  resumed = iterator_lib.BatchIterator(ds, 4, seed=3)
  resumed.set_state(first.get_state())
  part += _run(resumed, 4)
  for a, b in zip(whole, part):
    for key in ("x", "label", "index"):
      np.testing.assert_array_equal(a[key], b[key])
  assert whole[0]["x"].shape == (4, 2, 24, 24, 3)
  # New crops each epoch and for each view.
  assert not np.array_equal(whole[0]["x"][:, 0], whole[0]["x"][:, 1])
  views = {int(i): x for b in whole[:3] for i, x in zip(b["index"], b["x"])}
  later = {int(i): x for b in whole[3:6] for i, x in zip(b["index"], b["x"])}
  common = sorted(set(views) & set(later))
  assert common and not any(np.array_equal(views[i], later[i])
                            for i in common)


def test_two_processes_see_the_one_process_views(folder):
  ds = _train(folder, scale=(0.08, 1.0))
  one = _run(iterator_lib.BatchIterator(ds, 4, seed=1), 5)
  parts = [_run(iterator_lib.BatchIterator(ds, 4, seed=1, process_index=p,
                                           process_count=2), 5)
           for p in range(2)]
  for step, batch in enumerate(one):
    for key in ("x", "label", "index"):
      np.testing.assert_array_equal(
          batch[key], np.concatenate([parts[0][step][key],
                                      parts[1][step][key]]))


def test_worker_processes_give_the_same_batches_and_state(folder):
  """2 grain workers, started from a saved state (as a resumed run starts
  them), give the plain iterator's batches, across an epoch boundary."""
  ds = _train(folder, scale=(0.2, 1.0))
  plain = iterator_lib.BatchIterator(ds, 4, seed=2)
  expected = _run(plain, 6)
  saved = iterator_lib.BatchIterator(ds, 4, seed=2)
  _run(saved, 2)
  it = prefetch.PrefetchIterator(iterator_lib.BatchIterator(ds, 4, seed=2),
                                 num_workers=2)
  it.set_state(saved.get_state())
  try:
    got = _run(it, 4)
  finally:
    it.close()
  for a, b in zip(expected[2:], got):
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["index"], b["index"])
  assert it.get_state() == plain.get_state()


def test_tfds_images_are_cropped_whole_on_the_host():
  tfds = pytest.importorskip("tensorflow_datasets")
  from contrastive.data import tfds_source  # pylint: disable=g-import-not-at-top
  spec = host_crops.CropSpec(16, scale=(0.2, 1.0))
  with tfds.testing.mock_data(num_examples=4):
    ds = tfds_source.TfdsDataset("imagenet2012", "train", image_size=32,
                                 eval_resize=36).with_host_crops(spec)
    views = iterator_lib.load_batch(ds, np.array([3, 1]), epoch=2, seed=5)
    raw = tfds.data_source("imagenet2012", split="train")[1]["image"]
    evaluated = ds.get_batch([1])["x"][0]
  assert views["x"].shape == (2, 2, 16, 16, 3)
  np.testing.assert_array_equal(views["index"], [3, 1])
  np.testing.assert_array_equal(
      views["x"][1], host_crops.decode_train_views(raw, spec, seed=5, epoch=2,
                                                   index=1))
  np.testing.assert_array_equal(
      evaluated, host_crops.decode_eval(raw, host_crops.EvalSpec(32, 36)))


def test_synthetic_tfds_copy_holds_the_folder_s_images(folder, tmp_path):
  pytest.importorskip("tensorflow_datasets")
  from contrastive.data import tfds_source  # pylint: disable=g-import-not-at-top
  synthetic.write_tfds(folder, tmp_path)
  records = tfds_source.TfdsDataset("synthetic_imagenet", "train",
                                    data_dir=tmp_path, image_size=24,
                                    eval_resize=28)
  files = image_folder.ImageFolderDataset(folder, "train", image_size=24,
                                          eval_resize=28, cache_dir="")
  assert len(records) == len(files) == 14
  assert records.info.class_names == files.classes

  def images(ds):
    batch = ds.get_batch(np.arange(len(ds)))
    return sorted((int(l), x.tobytes()) for l, x in zip(batch["label"],
                                                         batch["x"]))
  # The records hold each file's bytes as they are (PNGs too). The
  # folder's JPEGs are decoded at half scale where the centre box allows
  # (libjpeg's DCT scaling), which the records' decoded arrays cannot be:
  # compare the folder's full-scale decodes. (Until 2026-12-04 this
  # compared the reduced decodes and counted 12 matches for the 12 JPEGs:
  # 10 JPEGs and the 2 PNGs, by coincidence.)
  folder_images = {(int(files[i]["label"]), host_crops.decode_eval(
      files.path(i), files.eval_spec, draft=False).tobytes())
                   for i in range(len(files))}
  tfds_images = images(records)
  assert sum(im in folder_images for im in tfds_images) == len(files)
  assert len(records.with_host_crops(host_crops.CropSpec(16)).get_views(
      [0, 1], epoch=0, seed=0)["x"]) == 2
