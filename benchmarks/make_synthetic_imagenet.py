"""Writes a synthetic ImageNet-like image folder for tests and benchmarks.

    python -m benchmarks.make_synthetic_imagenet --out=/tmp/synthetic_imagenet \
        --train=3000 --val=500 --classes=10

gives `<out>/train/<class>/<n>.JPEG` and `<out>/val/<class>/...`, the layout
`image_folder:<out>` reads. Write it outside the repository (it is tens to
hundreds of MB). `--tfds_dir=DIR` also writes the same JPEGs as a prepared
TFDS dataset in the ArrayRecord format, `synthetic_imagenet` (splits
'train' and 'test', features 'image' and 'label'), which
`tfds:synthetic_imagenet` with `data_dir=DIR` reads (TensorFlow is not
needed to write or read it).

The images imitate what matters to an input pipeline, not what a network
would learn from: ImageNet's sizes (most 500 x 375 or 375 x 500 and
500 x 333, the rest with a long side spread log-normally between 200 and
2,000 pixels; median 500 x 375) and natural-image-like content, so that the
JPEGs have realistic sizes (about 110 KB at 500 x 375, baseline JPEG,
quality 90, 4:2:0, as most of ImageNet's are) and decode at realistic
speed: a smooth random colour field (bicubic upsampling of a coarse Gaussian
grid), a few filled shapes with sharp edges, and a fine-grained texture.
White noise would make 300 KB files that decode slowly; flat colour, 10 KB
files that decode fast. Every image is a function of (seed, split, n), so
the folder is the same on every machine.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import time

import numpy as np

# (width, height) of most ImageNet photos, with their rough shares.
COMMON_SIZES = (((500, 375), 0.40), ((375, 500), 0.12), ((500, 333), 0.12),
                ((333, 500), 0.04))
QUALITY = 90


def image_size(rng: np.random.Generator) -> tuple[int, int]:
  """(width, height) drawn from the ImageNet-like size distribution."""
  u = rng.random()
  for size, share in COMMON_SIZES:
    if u < share:
      return size
    u -= share
  long_side = int(np.clip(np.exp(rng.normal(np.log(500), 0.45)), 200, 2000))
  aspect = rng.choice([4 / 3, 3 / 2, 1.0, 16 / 9, 5 / 4])
  short = max(64, int(round(long_side / aspect)))
  return (long_side, short) if rng.random() < 0.75 else (short, long_side)


def synthetic_image(rng: np.random.Generator, width: int, height: int,
                    texture: float = 17.0) -> np.ndarray:
  """uint8 [height, width, 3]: smooth field + sharp-edged shapes + texture."""
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
  grid = rng.normal(128, 60, (rng.integers(3, 8), rng.integers(3, 8), 3))
  field = Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8)).resize(
      (width, height), Image.BICUBIC)
  draw = ImageDraw.Draw(field)
  for _ in range(rng.integers(3, 9)):
    x0, y0 = rng.integers(0, width), rng.integers(0, height)
    w, h = rng.integers(width // 10, width // 2), rng.integers(
        height // 10, height // 2)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    box = [x0 - w // 2, y0 - h // 2, x0 + w // 2, y0 + h // 2]
    if rng.random() < 0.5:
      draw.ellipse(box, fill=colour)
    else:
      points = [(int(x0 + rng.normal(0, w / 2)), int(y0 + rng.normal(0, h / 2)))
                for _ in range(rng.integers(3, 7))]
      draw.polygon(points, fill=colour)
  image = np.asarray(field, np.float32)
  # Texture: colour noise in 2 x 2 blocks (grain, foliage) and a finer
  # luminance noise; their amplitudes set the JPEG size (~110 KB).
  small = rng.normal(0, texture, (height // 2 + 1, width // 2 + 1, 3))
  grain = np.repeat(np.repeat(small, 2, 0), 2, 1)[:height, :width]
  fine = rng.normal(0, 0.6 * texture, (height, width, 1))
  return np.clip(image + grain + fine, 0, 255).astype(np.uint8)


def write_folder(out: str | os.PathLike, *, train: int, val: int,
                 classes: int, seed: int = 0, png_every: int = 0,
                 size_fn=image_size, quality: int = QUALITY) -> dict:
  """Writes the folder; returns {'files', 'bytes', 'seconds'}.

  `png_every=k` writes every k-th image as PNG (0: JPEGs only); `size_fn`
  (rng -> (width, height)) replaces the size distribution (tests use tiny
  images).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  out = pathlib.Path(out)
  start, total, count = time.perf_counter(), 0, 0
  for split, number in (("train", train), ("val", val)):
    for n in range(number):
      label = n % classes
      folder = out / split / f"n{label:08d}"
      folder.mkdir(parents=True, exist_ok=True)
      rng = np.random.default_rng([seed, split == "val", n])
      width, height = size_fn(rng)
      pixels = synthetic_image(rng, width, height)
      if png_every and n % png_every == png_every - 1:
        path = folder / f"{split}_{n:07d}.png"
        Image.fromarray(pixels).save(path)
      else:
        path = folder / f"{split}_{n:07d}.JPEG"
        Image.fromarray(pixels).save(path, quality=quality, subsampling=2)
      total += path.stat().st_size
      count += 1
  return {"files": count, "bytes": total,
          "seconds": time.perf_counter() - start}


def write_tfds(folder: str | os.PathLike, data_dir: str | os.PathLike,
               name: str = "synthetic_imagenet") -> str:
  """Writes `folder`'s train/ and val/ images (as they are encoded) as the
  prepared TFDS dataset `name` in `data_dir`, ArrayRecord files; returns
  its path. Class names: train/'s sorted folder names."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core import registered  # pylint: disable=g-import-not-at-top
  folder = pathlib.Path(folder)
  classes = sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())
  splits = {"train": folder / "train", "test": folder / "val"}

  def examples(split_dir):
    for label, name_ in enumerate(classes):
      for path in sorted((split_dir / name_).glob("*")):
        yield f"{name_}/{path.name}", {"image": str(path), "label": label}

  with registered.skip_registration():
    class SyntheticImagenet(tfds.core.GeneratorBasedBuilder):
      VERSION = tfds.core.Version("1.0.0")
      # A one-part module name: TFDS then looks for no checksums file beside
      # the code (which needs importlib_resources for a package's module).
      __module__ = name

      def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(encoding_format="jpeg"),
                "label": tfds.features.ClassLabel(names=classes)}))

      def _split_generators(self, dl_manager):
        del dl_manager
        return {split: examples(path) for split, path in splits.items()
                if path.is_dir()}

      def _generate_examples(self):  # pylint: disable=arguments-differ
        raise NotImplementedError  # _split_generators yields the examples

    SyntheticImagenet.name = name
    builder = SyntheticImagenet(data_dir=str(data_dir),
                                file_format="array_record")
    builder.download_and_prepare()
  return str(builder.data_dir)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True,
                      help="folder to write (outside the repository)")
  parser.add_argument("--train", type=int, default=3000)
  parser.add_argument("--val", type=int, default=500)
  parser.add_argument("--classes", type=int, default=10)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--tfds_dir", default=None,
                      help="also write a TFDS ArrayRecord copy here")
  args = parser.parse_args()
  stats = write_folder(args.out, train=args.train, val=args.val,
                       classes=args.classes, seed=args.seed)
  print(f"{stats['files']} images, {stats['bytes'] / 2**20:.1f} MiB"
        f" ({stats['bytes'] / stats['files'] / 1e3:.0f} KB mean) in"
        f" {stats['seconds']:.0f} s -> {args.out}")
  if args.tfds_dir:
    print("TFDS copy ->", write_tfds(args.out, args.tfds_dir))


if __name__ == "__main__":
  main()
