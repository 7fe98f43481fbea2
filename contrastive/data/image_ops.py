"""Deterministic NumPy resizing for batching images of different sizes."""
from __future__ import annotations

import numpy as np


def _linear_weights(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] weights of antialiased linear interpolation.

  Output pixel centres map to input coordinates `(o + 0.5) * in/out - 0.5`
  (pixel-centre alignment). The triangle kernel is widened by the scale when
  shrinking, so each output pixel averages the input pixels it covers (as
  PIL's BILINEAR filter does) instead of aliasing.
  """
  scale = in_size / out_size
  support = max(scale, 1.0)
  centres = (np.arange(out_size) + 0.5) * scale - 0.5
  distance = np.abs(np.arange(in_size)[None, :] - centres[:, None]) / support
  weights = np.maximum(0.0, 1.0 - distance)
  return weights / weights.sum(axis=1, keepdims=True)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Resizes [H, W, C] to [height, width, C] (antialiased bilinear).

  Integer images are rounded and clipped back to their dtype's range.

  Example:
    resize(np.zeros((64, 48, 3), np.uint8), 32, 32).shape  # (32, 32, 3)
  """
  if image.ndim != 3:
    raise ValueError(f"image must be [H, W, C], got shape {image.shape}.")
  rows = _linear_weights(image.shape[0], height)
  cols = _linear_weights(image.shape[1], width)
  # Separable: rows first ([height, W, C]), then columns.
  out = np.tensordot(rows, image.astype(np.float64), axes=1)
  out = np.einsum("owc,pw->opc", out, cols, optimize=True)
  if np.issubdtype(image.dtype, np.integer):
    limits = np.iinfo(image.dtype)
    out = np.clip(np.round(out), limits.min, limits.max)
  return out.astype(image.dtype)


def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
  """Central square crop (side min(H, W)), then resize to [size, size, C].

  The crop keeps the aspect ratio (no stretching); both steps are
  deterministic, so an evaluation split always yields the same pixels.

  Args:
    image: [H, W, C] array.
    size: output height and width.

  Returns:
    [size, size, C], dtype of `image`.

  Example:
    center_crop_resize(np.zeros((375, 500, 3), np.uint8), 224).shape
  """
  if image.ndim != 3:
    raise ValueError(f"image must be [H, W, C], got shape {image.shape}.")
  if size < 1:
    raise ValueError(f"size must be >= 1, got {size}.")
  h, w = image.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  crop = image[top:top + side, left:left + side]
  if side == size:
    return np.array(crop)
  return resize(crop, size, size)
