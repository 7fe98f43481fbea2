"""torchvision's ImageFolder + RandomResizedCrop DataLoader, timed.

The reference row of `python -m benchmarks.input_pipeline
--dataset=synthetic_imagenet`, run by that benchmark in a separate
interpreter that has torch and torchvision (this project does not depend
on them). Standalone:

    /usr/bin/python3 benchmarks/torchvision_loader.py --root=/tmp/synthetic_imagenet/train \
        --workers=2 --batches=20

It prints one JSON line: images/s (wall; with workers, over the second half
of the timed batches, once the prefetched ones are used up) and, with
--workers=0, images per CPU second of this process. The transform is what the host does in our
pipeline too, two views per image, each RandomResizedCrop(224, scale)
(PIL bilinear, antialiased) to a uint8 tensor (PILToTensor); the image is
decoded once for both views, as the papers' two-crop wrappers do.

Getting torchvision: `apt-get install -y python3-torchvision` (Debian 12:
torch 1.13, torchvision 0.14, into /usr/bin/python3), or
`python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch torchvision`.
"""
from __future__ import annotations

import argparse
import json
import time


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True, help="the train/ folder")
  parser.add_argument("--workers", type=int, default=0)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--batches", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--scale", default="0.08,1.0")
  args = parser.parse_args()
  import torch  # pylint: disable=g-import-not-at-top
  from torchvision import datasets, transforms  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(1)
  lo, hi = (float(v) for v in args.scale.split(","))
  crop = transforms.Compose([
      transforms.RandomResizedCrop(args.size, scale=(lo, hi)),
      transforms.PILToTensor()])

  def two_views(image):
    return torch.stack([crop(image), crop(image)])

  dataset = datasets.ImageFolder(args.root, transform=two_views)
  loader = torch.utils.data.DataLoader(
      dataset, batch_size=args.batch_size, shuffle=True,
      num_workers=args.workers, drop_last=True,
      persistent_workers=args.workers > 0)
  def batches():  # epoch after epoch, as a training loop reads them
    while True:
      yield from loader
  stream = batches()
  for _ in range(args.warmup):
    next(stream)
  start, cpu = time.perf_counter(), time.process_time()
  shape, arrivals = None, []
  for _ in range(args.batches):
    views, _ = next(stream)
    arrivals.append(time.perf_counter())
    shape = tuple(views.shape)
  cpu = time.process_time() - cpu
  images = args.batches * args.batch_size
  if args.workers:  # steady state: the second half (prefetched batches first)
    half = len(arrivals) // 2
    rate = ((len(arrivals) - 1 - half) * args.batch_size
            / (arrivals[-1] - arrivals[half]))
  else:
    rate = images / (arrivals[-1] - start)
  print(json.dumps({
      "images_per_s": rate,
      "images_per_cpu_s": images / cpu if args.workers == 0 else None,
      "shape": shape, "torch": torch.__version__,
      "torchvision": __import__("torchvision").__version__}))


if __name__ == "__main__":
  main()
