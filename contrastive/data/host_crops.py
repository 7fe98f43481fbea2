"""Inception-style crops of the whole image, drawn and resized on the host.

For datasets whose images vary in size (ImageNet, an image folder) or are
larger than the training size, each view's random-resized crop is drawn
from the full decoded image, as SimCLR, MoCo v2 and BYOL do, and resized to
the training size here, in uint8; the rest of the recipe (flip, colour
jitter, grayscale, blur, solarize) then runs on the device
(`contrastive.augment`, with the preset's `crop_on='host'`).

Determinism. The box of view `v` of example `index` in epoch `epoch` comes
from `np.random.default_rng([TAG, seed, epoch, index, v])` alone, so it
does not depend on the batch it falls in, the process that reads it, the
worker that decodes it, or whether the run was resumed: a resumed run and a
run split over several processes draw the same boxes as one uninterrupted
process.

The sampling law (`sample_box`, torchvision's RandomResizedCrop): up to
`attempts` candidates with area fraction ~ U(scale) and aspect ratio
w / h ~ logU(ratio), sides rounded; the first that fits is placed uniformly
over the positions where it fits; if none fits, the largest centred box
whose ratio is clamped into `ratio`. Each view consumes exactly
`2 * attempts + 2` uniforms, laid out as on the device
(`contrastive.augment.image.sample_crop_box`).

Decoding (`decode_views`). A JPEG is decoded at 1/2, 1/4 or 1/8 scale
(libjpeg's DCT scaling) when every view's box, so reduced, still has at
least the output's size in pixels, so a view that the full decode would
shrink is still shrunk, never enlarged; each box is then cropped (the whole
pixels covering it) and resampled to the output size by an antialiased
bilinear filter (Pillow's and torchvision's law: a triangle whose support
grows with the reduction), given the box's exact, possibly fractional,
extent, so, as with torchvision's crop-then-resize, no pixel outside the box
is read (at a reduced scale, none beyond the reduced pixels that the box
partly covers).

Speed (issue 15: 400 images per host core). Two small wheels do the two
costly steps; without them the same steps run in Pillow, more slowly:

- simplejpeg (libjpeg-turbo, RGB straight into a NumPy array) decodes
  colour and greyscale JPEGs about 20 % faster than Pillow, pixel for pixel
  equal (same IDCT and upsampling); Pillow still decodes everything else
  (PNG, CMYK JPEGs, grayscale output, files simplejpeg rejects).
- cykooz-resizer (the Rust crate fast_image_resize, AVX2) does the
  antialiased bilinear resize about 3x faster than Pillow's; its pixels
  differ from Pillow's by at most one grey level (rounding; about a fifth
  of them by one).

Evaluation (`eval_box`): the short side resized to `resize` and the centre
`size` crop kept (ImageNet's 256 -> 224), done as one resize of the
centred box of side `short * size / resize`.
"""
from __future__ import annotations

import dataclasses
import io
import math
import os
from typing import Any, Callable, Sequence

import numpy as np

try:  # see "Speed" above: both optional, Pillow does the same otherwise
  import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover
  _simplejpeg = None
try:
  import cykooz_resizer as _cykooz
except ImportError:  # pragma: no cover
  _cykooz = None

# Separates the crop keys from any other stream seeded by (seed, epoch, ...).
TAG = 0x63726F70  # 'crop'
_REDUCTIONS = (8, 4, 2)  # the scales libjpeg decodes at, besides 1


def _pair(name: str, value: Sequence[float], low: float = 0.0
          ) -> tuple[float, float]:
  lo, hi = (float(v) for v in value)
  if not low <= lo <= hi:
    raise ValueError(f"{name} must be (lo, hi) with {low} <= lo <= hi, got"
                     f" {tuple(value)!r}.")
  return lo, hi


def _size(size: int | Sequence[int]) -> tuple[int, int]:
  if isinstance(size, (int, np.integer)):
    size = (int(size), int(size))
  size = tuple(int(s) for s in size)
  if len(size) != 2 or min(size) < 1:
    raise ValueError(f"size must be a positive int or (h, w), got {size!r}.")
  return size


@dataclasses.dataclass(frozen=True)
class CropSpec:
  """What each training view is: its output size and the crop's law.

  Attributes:
    size: output (height, width) (an int: a square).
    scale: range of the crop's area as a fraction of the whole image's.
    ratio: range of the crop's aspect ratio w / h (drawn log-uniformly).
    num_views: views per example.
    attempts: candidate boxes before the centred fallback (torchvision: 10).
    draft: allow JPEG decoding at a reduced scale (see module docstring).
  """
  size: Any = 224
  scale: tuple[float, float] = (0.08, 1.0)
  ratio: tuple[float, float] = (3 / 4, 4 / 3)
  num_views: int = 2
  attempts: int = 10
  draft: bool = True

  def __post_init__(self):
    object.__setattr__(self, "size", _size(self.size))
    lo, hi = _pair("scale", self.scale)
    if hi > 1 or hi <= 0:
      raise ValueError(f"scale must lie in (0, 1], got {self.scale!r}.")
    object.__setattr__(self, "scale", (lo, hi))
    r_lo, r_hi = _pair("ratio", self.ratio)
    if r_lo <= 0:
      raise ValueError(f"ratio must be > 0, got {self.ratio!r}.")
    object.__setattr__(self, "ratio", (r_lo, r_hi))
    if self.num_views < 1 or self.attempts < 1:
      raise ValueError(f"num_views and attempts must be >= 1, got"
                       f" {self.num_views} and {self.attempts}.")


@dataclasses.dataclass(frozen=True)
class EvalSpec:
  """Evaluation images: short side to `resize`, centre `size` crop.

  `resize=None` keeps the scale: the centre crop of `size` pixels of an
  image at least that large, else of its whole short side, resized.
  """
  size: Any = 224
  resize: int | None = 256

  def __post_init__(self):
    object.__setattr__(self, "size", _size(self.size))
    if self.resize is not None and self.resize < max(self.size):
      raise ValueError(f"resize ({self.resize}) must be >= the crop size"
                       f" {self.size}.")


def view_rng(seed: int, epoch: int, index: int, view: int
             ) -> np.random.Generator:
  """The generator of one view's crop; a function of its four ids only."""
  for name, value in (("seed", seed), ("epoch", epoch), ("index", index),
                      ("view", view)):
    if value < 0:
      raise ValueError(f"{name} must be >= 0, got {value}.")
  return np.random.default_rng([TAG, int(seed), int(epoch), int(index),
                                int(view)])


def sample_box(u: np.ndarray, height: int, width: int, *,
               scale: Sequence[float], ratio: Sequence[float],
               attempts: int) -> tuple[int, int, int, int]:
  """The crop box (top, left, h, w) for `2 * attempts + 2` uniforms `u`.

  `u[:attempts]` draw the areas, `u[attempts:2 * attempts]` the log aspect
  ratios, `u[-2]` and `u[-1]` the top and left offsets (module docstring).
  """
  u = [float(v) for v in np.asarray(u, np.float64).ravel()]
  if len(u) != 2 * attempts + 2:
    raise ValueError(f"need {2 * attempts + 2} uniforms, got {len(u)}.")
  area = height * width
  log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
  for k in range(attempts):  # scalar: most first attempts fit
    target = area * (scale[0] + (scale[1] - scale[0]) * u[k])
    aspect = math.exp(log_lo + (log_hi - log_lo) * u[attempts + k])
    # round() halves to even, as jnp.round does on the device.
    w = round(math.sqrt(target * aspect))
    h = round(math.sqrt(target / aspect))
    if 0 < w <= width and 0 < h <= height:
      top = min(int(u[-2] * (height - h + 1)), height - h)
      left = min(int(u[-1] * (width - w + 1)), width - w)
      return top, left, h, w
  in_ratio = width / height
  if in_ratio < ratio[0]:
    w, h = width, int(round(width / ratio[0]))
  elif in_ratio > ratio[1]:
    w, h = int(round(height * ratio[1])), height
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


def view_boxes(spec: CropSpec, seed: int, epoch: int, index: int,
               height: int, width: int) -> list[tuple[int, int, int, int]]:
  """The `spec.num_views` boxes of example `index` in `epoch`."""
  return [sample_box(view_rng(seed, epoch, index, v).random(
      2 * spec.attempts + 2), height, width, scale=spec.scale,
                     ratio=spec.ratio, attempts=spec.attempts)
          for v in range(spec.num_views)]


def eval_box(height: int, width: int, spec: EvalSpec
             ) -> tuple[float, float, float, float]:
  """The centred (top, left, h, w) box that `spec` resizes to its size."""
  out_h, out_w = spec.size
  short = min(height, width)
  if spec.resize is None:
    factor = 1.0 if short >= max(out_h, out_w) else max(out_h, out_w) / short
  else:
    factor = spec.resize / short
  h, w = out_h / factor, out_w / factor
  return (height - h) / 2, (width - w) / 2, h, w


def reduction(boxes: Sequence[Sequence[float]], size: Sequence[int]) -> int:
  """The largest JPEG scale (8, 4, 2 or 1) that keeps every box at least
  `size` pixels in both sides."""
  out_h, out_w = size
  limit = min(min(b[2] / out_h, b[3] / out_w) for b in boxes)
  for s in _REDUCTIONS:
    if limit >= s:
      return s
  return 1


def open_image(source: Any):
  """A lazily decoded PIL image from a path, bytes or a uint8 array."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if isinstance(source, np.ndarray):
    array = source[..., 0] if source.ndim == 3 and source.shape[-1] == 1 \
        else source
    return Image.fromarray(np.ascontiguousarray(array, np.uint8))
  if isinstance(source, (bytes, bytearray, memoryview)):
    return Image.open(io.BytesIO(source))
  return Image.open(source)


def _read_bytes(source: Any) -> bytes | None:
  if isinstance(source, (bytes, bytearray, memoryview)):
    return bytes(source)
  if isinstance(source, (str, os.PathLike)):
    with open(source, "rb") as f:
      return f.read()
  return None


def _scaled(side: int, s: int) -> int:
  return -(-side // s)  # libjpeg's size at 1/s: the ceiling


def _decode_fast(data: bytes, boxes_fn, size, draft: bool):
  """(RGB pixels at 1/s, s, boxes) by simplejpeg, or None where it cannot
  give Pillow's pixels (not a JPEG, CMYK/YCCK, an error: Pillow decides)."""
  if _simplejpeg is None or not _simplejpeg.is_jpeg(data):
    return None
  try:
    height, width, colorspace, _ = _simplejpeg.decode_jpeg_header(data)
    if colorspace not in ("YCbCr", "Gray", "RGB"):
      return None
    boxes = boxes_fn(height, width)
    s = reduction(boxes, size) if draft else 1
    # The smallest of libjpeg's scales that keeps at least these sides is
    # exactly 1/s.
    pixels = _simplejpeg.decode_jpeg(
        data, "RGB", min_height=_scaled(height, s) if s > 1 else 0,
        min_width=_scaled(width, s) if s > 1 else 0)
  except ValueError:
    return None
  if pixels.shape[:2] != (_scaled(height, s), _scaled(width, s)):
    return None
  return pixels, s, boxes


def _decode_pil(source: Any, boxes_fn, size, draft: bool, channels: int):
  """(pixels [H, W(, 3)] at 1/s, s, boxes) by Pillow."""
  if isinstance(source, np.ndarray):
    array = np.asarray(source[..., 0] if source.ndim == 3
                       and source.shape[-1] == 1 else source, np.uint8)
    if array.ndim == (3 if channels == 3 else 2) and (
        channels == 1 or array.shape[-1] == 3):
      return array, 1, boxes_fn(*array.shape[:2])  # already decoded
  with open_image(source) as img:
    width, height = img.size
    boxes = boxes_fn(height, width)
    s = reduction(boxes, size) if draft and img.format == "JPEG" else 1
    if s > 1:
      img.draft(img.mode, (_scaled(width, s), _scaled(height, s)))
      # PIL picks the scale from the requested size; read back what it did.
      s = img.decoderconfig[0] if img.decoderconfig else 1
    mode = "RGB" if channels == 3 else "L"
    img = img.convert(mode) if img.mode != mode else img
    return np.asarray(img), s, boxes


def _resample(region: np.ndarray, box: tuple[float, float, float, float],
              size: Sequence[int]) -> np.ndarray:
  """`region`'s part `box` (x0, y0, x1, y1) resized to `size`, antialiased
  bilinear: uint8 [h, w(, C)]."""
  out_h, out_w = size
  rh, rw = region.shape[:2]
  if _cykooz is None:
    from PIL import Image  # pylint: disable=g-import-not-at-top
    return np.asarray(Image.fromarray(np.ascontiguousarray(region)).resize(
        (out_w, out_h), Image.BILINEAR, box=box))
  global _RESIZER
  if _RESIZER is None:
    _RESIZER = (_cykooz.Resizer(), _cykooz.ResizeOptions(
        resize_alg=_cykooz.ResizeAlg.convolution(
            _cykooz.FilterType.bilinear), use_alpha=False))
  resizer, options = _RESIZER
  if box != (0, 0, rw, rh):
    options = options.copy()
    options.crop_box = _cykooz.CropBox(box[0], box[1], box[2] - box[0],
                                       box[3] - box[1])
  pixel = _cykooz.PixelType.U8x3 if region.ndim == 3 else \
      _cykooz.PixelType.U8
  src = _cykooz.ImageData(rw, rh, pixel, region.tobytes())
  dst = _cykooz.ImageData(out_w, out_h, pixel)
  resizer.resize(src, dst, options)
  return np.frombuffer(dst.get_buffer(), np.uint8).reshape(
      out_h, out_w, *region.shape[2:])


_RESIZER = None  # (cykooz Resizer, options), made on first use per process


def decode_views(source: Any, boxes_fn: Callable[[int, int], Sequence],
                 size: Sequence[int], *, draft: bool = True,
                 channels: int = 3) -> np.ndarray:
  """Decodes `source` once and resamples each of its boxes to `size`.

  Args:
    source: a path, encoded bytes, or a uint8 [H, W(, C)] array.
    boxes_fn: (height, width) of the full image -> boxes (top, left, h, w)
      in its pixels (ints or floats).
    size: output (height, width).
    draft: decode JPEGs at a reduced scale when every box allows it.
    channels: 3 (RGB) or 1 (grayscale).

  Returns:
    uint8 [len(boxes), height, width, channels].
  """
  out_h, out_w = size
  decoded = None
  if channels == 3:  # simplejpeg's grey is libjpeg's Y, not Pillow's L
    data = _read_bytes(source)
    if data is not None:
      decoded = _decode_fast(data, boxes_fn, size, draft)
      source = io.BytesIO(data) if decoded is None else source
  if decoded is None:
    decoded = _decode_pil(source, boxes_fn, size, draft, channels)
  pixels, s, boxes = decoded
  views = np.empty((len(boxes), out_h, out_w, channels), np.uint8)
  for i, (top, left, h, w) in enumerate(boxes):
    # Crop first (as torchvision does, so that the edge pixels do not
    # blend with what lies outside the box): the whole pixels covering
    # the box, then the box's exact, possibly fractional, part of them.
    x0, y0 = math.floor(left / s), math.floor(top / s)
    x1 = min(math.ceil((left + w) / s), pixels.shape[1])
    y1 = min(math.ceil((top + h) / s), pixels.shape[0])
    box = (left / s - x0, top / s - y0, (left + w) / s - x0,
           (top + h) / s - y0)
    views[i] = _resample(pixels[y0:y1, x0:x1], box, size).reshape(
        out_h, out_w, channels)
  return views


def decode_eval(source: Any, spec: EvalSpec, *, draft: bool = True,
                channels: int = 3) -> np.ndarray:
  """The evaluation image (`EvalSpec`) of `source`: uint8 [h, w, C]."""
  return decode_views(
      source, lambda h, w: [eval_box(h, w, spec)], spec.size, draft=draft,
      channels=channels)[0]


def decode_train_views(source: Any, spec: CropSpec, *, seed: int,
                       epoch: int, index: int, channels: int = 3
                       ) -> np.ndarray:
  """Example `index`'s views in `epoch`: uint8 [num_views, h, w, C]."""
  return decode_views(
      source, lambda h, w: view_boxes(spec, seed, epoch, index, h, w),
      spec.size, draft=spec.draft, channels=channels)
