"""Centre-crop-resize against PIL's bilinear filter and limiting cases."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from contrastive.data import image_ops


def _pil_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Independent reference: PIL BILINEAR on each float32 channel."""
  channels = [
      np.asarray(Image.fromarray(image[..., c].astype(np.float32)).resize(
          (width, height), Image.BILINEAR))
      for c in range(image.shape[-1])]
  return np.stack(channels, axis=-1)


@pytest.mark.parametrize("shape, out", [((40, 30, 2), (16, 12)),
                                        ((9, 13, 1), (20, 31)),
                                        ((17, 17, 3), (5, 17))])
def test_resize_matches_pil(shape, out):
  image = np.random.default_rng(0).random(shape, dtype=np.float32)
  np.testing.assert_allclose(image_ops.resize(image, *out),
                             _pil_resize(image, *out), atol=1e-5)


def test_uint8_rounds_and_stays_in_range():
  image = np.random.default_rng(1).integers(0, 256, (30, 20, 3),
                                            dtype=np.uint8)
  out = image_ops.resize(image, 11, 7)
  assert out.dtype == np.uint8
  reference = _pil_resize(image.astype(np.float32), 11, 7)
  assert np.abs(out.astype(np.float32) - reference).max() <= 0.5 + 1e-4


def test_limits_identity_and_constant():
  image = np.random.default_rng(2).random((8, 8, 3))
  np.testing.assert_allclose(image_ops.resize(image, 8, 8), image)
  constant = np.full((37, 23, 1), 7.25)
  np.testing.assert_allclose(image_ops.resize(constant, 5, 9), 7.25)


def test_center_crop_takes_the_middle_square():
  image = np.zeros((10, 30, 1), np.uint8)
  image[:, 10:20] = 200  # The central 10 x 10 square.
  out = image_ops.center_crop_resize(image, 10)
  np.testing.assert_array_equal(out, np.full((10, 10, 1), 200, np.uint8))
  tall = np.arange(7 * 3).reshape(7, 3, 1)
  np.testing.assert_array_equal(image_ops.center_crop_resize(tall, 3),
                                tall[2:5])
  assert image_ops.center_crop_resize(image, 4).shape == (4, 4, 1)


def test_bad_inputs():
  with pytest.raises(ValueError, match=r"\[H, W, C\]"):
    image_ops.center_crop_resize(np.zeros((4, 4)), 2)
  with pytest.raises(ValueError, match="size must be >= 1"):
    image_ops.center_crop_resize(np.zeros((4, 4, 1)), 0)
