"""Per-example, jit-able augmentations for images, audio and IMU windows.

Each op is `fn(rng, x, *, params) -> x` on ONE example; `make_views` vmaps a
recipe over a batch with a key per example and per view. Recipes are built by
name with `build_augment(config)`; see `presets.py` for what each does.

Example:
  >>> augment = build_augment({"name": "simclr", "image_size": 32})
  >>> views = make_views(rng, images_uint8, augment, num_views=2)
  >>> views.shape, views.dtype  # (2, B, 32, 32, 3) float32 in [0, 1]
"""
from contrastive.augment.audio import add_noise
from contrastive.augment.audio import freq_mask
from contrastive.augment.audio import make_spec_transform
from contrastive.augment.audio import random_crop
from contrastive.augment.audio import random_gain
from contrastive.augment.audio import random_time_shift
from contrastive.augment.audio import spec_augment
from contrastive.augment.audio import time_mask
from contrastive.augment.color import color_jitter
from contrastive.augment.color import grayscale
from contrastive.augment.image import gaussian_blur
from contrastive.augment.image import horizontal_flip
from contrastive.augment.image import normalize
from contrastive.augment.image import random_resized_crop
from contrastive.augment.image import solarize
from contrastive.augment.image import to_float
from contrastive.augment.presets import Augment
from contrastive.augment.presets import build_augment
from contrastive.augment.presets import PRESETS
from contrastive.augment.sensor import channel_mask
from contrastive.augment.sensor import jitter
from contrastive.augment.sensor import rotation
from contrastive.augment.sensor import scaling
from contrastive.augment.sensor import segment_permutation
from contrastive.augment.sensor import time_warp
from contrastive.augment.views import make_views
