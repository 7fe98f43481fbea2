"""Named augmentation recipes: `build_augment(config)` -> `Augment`.

Default recipes and why:

* `simclr` (Chen et al., 2020, CIFAR-10 recipe): random resized crop with
  area scale (0.08, 1) and ratio (3/4, 4/3), horizontal flip p = 0.5, colour
  jitter of strength 0.5 (brightness/contrast/saturation 0.4, hue 0.1) with
  p = 0.8, grayscale p = 0.2 and no blur, which SimCLR drops for 32x32
  images. Crop + colour is the pair SimCLR found essential: crops alone can
  be matched by colour histograms.
* `mocov2` (Chen et al., 2020, "Improved baselines"): as SimCLR but crop
  scale (0.2, 1) and Gaussian blur (sigma 0.1..2) with p = 0.5.
* `byol` (Grill et al., 2020): two asymmetric views: saturation jitter 0.2,
  blur p = 1.0 / 0.1 and solarize p = 0.0 / 0.2 for view 1 / view 2.
* `audio_default`: circular time shift up to 0.25 s at 8 kHz, gain +-6 dB,
  Gaussian noise at 10..40 dB SNR with p = 0.5, then SpecAugment on the
  encoder's log-mels (2 time masks <= 10 frames, 2 frequency masks <= 8 mel
  bins, i.e. up to ~0.1 s and 1/8 of the band for the audio CNN's 98 x 64
  log-mels of a 1 s clip; Park et al., 2019). Shifts and gains keep a spoken
  digit's identity while changing its position and loudness; the noise and
  the masks make the encoder rely on more than one band or instant (COLA,
  Saeed et al., 2021; CLAR, Al-Tahan & Mohsenzadeh, 2021).
* `sensor_default`: rotation of both tri-axial sensors by one rotation of
  up to 30 degrees (p = 0.5), per-channel scaling sigma 0.1, time warp sigma
  0.2 (p = 0.5) and jitter sigma 0.05 (Um et al., 2017; Saeed et al., 2019;
  Tang et al., 2021). Rotations are kept small because gravity's direction
  in the device frame encodes posture (lying vs standing); segment
  permutation and channel masking are available but off, since permuting
  destroys the order that defines postural transitions. It expects raw
  readings (UCI HAPT loaded with `standardize=False`): standardise after
  augmenting, or rotations stop being rotations of the device.
* `none`: no augmentation; uint8 images become float32 in [0, 1].

Where the image crop is drawn: `crop_on='device'` (the default) crops each
view from the batch's images inside the train step; `crop_on='host'` has the
data pipeline crop each view from the whole decoded image and resize it on
the host (`contrastive.data.host_crops`, with this recipe's `image_size`,
`crop_scale` and `crop_ratio`), as the papers do for ImageNet and STL-10;
the device then runs the rest of the recipe on those views.

Every field of a preset can be overridden from the config. For asymmetric
recipes, a scalar field (a probability or strength) may be given as a tuple
with one value per view, e.g. `blur_prob=(1.0, 0.1)`.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Mapping

import jax

from contrastive import config_sections
from contrastive.augment import _util
from contrastive.augment import audio
from contrastive.augment import pipelines

Array = jax.Array
ViewFn = Callable[[Array, Array], Array]


@dataclasses.dataclass(frozen=True)
class Preset:
  """A recipe: modality, pipeline and default params (tuples = per view)."""
  modality: str
  pipeline: Callable[..., Array]
  defaults: Mapping[str, Any]


_IMAGE = dict(
    image_size=None, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3),
    flip_prob=0.5, jitter_strength=None, brightness=0.4, contrast=0.4,
    saturation=0.4, hue=0.1, jitter_prob=0.8, grayscale_prob=0.2,
    blur_prob=0.0, blur_sigma=(0.1, 2.0), blur_kernel_size=None,
    solarize_prob=0.0, solarize_threshold=0.5, mean=None, std=None,
    crop_on="device",
)
_AUDIO = dict(
    crop_length=None, max_shift=2000, shift_mode="circular", shift_prob=1.0,
    gain_db=(-6.0, 6.0), gain_prob=1.0, snr_db=(10.0, 40.0), noise_prob=0.5,
    time_max_width=10, time_masks=2, freq_max_width=8, freq_masks=2,
)
_SENSOR = dict(
    channel_groups=((0, 1, 2), (3, 4, 5)), rotation_prob=0.5,
    rotation_max_angle=math.pi / 6, scaling_sigma=0.1, scaling_prob=1.0,
    time_warp_sigma=0.2, time_warp_knots=4, time_warp_prob=0.5,
    permutation_segments=4, permutation_prob=0.0, jitter_sigma=0.05,
    jitter_prob=1.0, channel_mask_prob=0.0,
)

PRESETS: dict[str, Preset] = {
    "simclr": Preset("image", pipelines.image_pipeline,
                     {**_IMAGE, "jitter_strength": 0.5}),
    "mocov2": Preset("image", pipelines.image_pipeline,
                     {**_IMAGE, "crop_scale": (0.2, 1.0), "blur_prob": 0.5}),
    "byol": Preset("image", pipelines.image_pipeline,
                   {**_IMAGE, "saturation": 0.2, "blur_prob": (1.0, 0.1),
                    "solarize_prob": (0.0, 0.2)}),
    "audio_default": Preset("audio", pipelines.audio_pipeline, _AUDIO),
    "sensor_default": Preset("sensor", pipelines.sensor_pipeline, _SENSOR),
    "none": Preset("any", pipelines.identity_pipeline,
                   dict(mean=None, std=None)),
}

# Scalar fields that may take one value per view (a tuple). Other fields are
# ranges or structures whose tuples are values, not per-view lists.
PER_VIEW_FIELDS = frozenset({
    "flip_prob", "jitter_strength", "brightness", "contrast", "saturation",
    "hue", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob",
    "solarize_threshold", "shift_prob", "max_shift", "gain_prob",
    "noise_prob", "rotation_prob", "rotation_max_angle", "scaling_sigma",
    "scaling_prob", "time_warp_sigma", "time_warp_prob", "permutation_prob",
    "jitter_sigma", "jitter_prob", "channel_mask_prob",
})
CROP_ON = ("device", "host")
_SPEC_FIELDS = ("time_max_width", "time_masks", "freq_max_width",
                "freq_masks")
_JITTER_FIELDS = ("brightness", "contrast", "saturation", "hue")


# eq=False: hashed by identity, so an Augment can be a static jit argument.
@dataclasses.dataclass(frozen=True, eq=False)
class Augment:
  """A built recipe: per-view, per-example functions `fn(rng, x) -> x`.

  Attributes:
    name: the preset's name.
    modality: "image", "audio", "sensor" or "any".
    view_fns: one function per distinct view (1 for symmetric recipes);
      view `v` uses `view_fns[v % len(view_fns)]`.
    params: the resolved params of each view, for logging.
    spec_transform: `fn(rng, spec)` for the audio encoder's log-mels, or None.
  """
  name: str
  modality: str
  view_fns: tuple[ViewFn, ...]
  params: tuple[Mapping[str, Any], ...]
  spec_transform: ViewFn | None = None

  @property
  def crop_on(self) -> str:
    """'host' when the data pipeline crops each view (image recipes)."""
    return self.params[0].get("crop_on", "device") if self.params else "device"

  def host_crop_params(self) -> dict[str, Any]:
    """The crop's size, scale and ratio, for `host_crops.CropSpec`."""
    view = self.params[0]
    return {"size": view["image_size"], "scale": tuple(view["crop_scale"]),
            "ratio": tuple(view["crop_ratio"])}

  def view_fn(self, view: int) -> ViewFn:
    return self.view_fns[view % len(self.view_fns)]

  def __call__(self, rng: Array, x: Array, view: int = 0) -> Array:
    """Augments one example as view `view`."""
    return self.view_fn(view)(rng, x)


def _resolve(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
  preset = PRESETS[name]
  config_sections.check_fields(overrides, sorted(preset.defaults),
                               f"augmentation preset {name!r}",
                               phrase="Unknown field(s)")
  params = {**preset.defaults, **overrides}
  strength = params.get("jitter_strength")
  if strength is not None:
    # SimCLR's colour strength s: (0.8 s, 0.8 s, 0.8 s, 0.2 s), unless a
    # factor is given explicitly.
    for field, scale in zip(_JITTER_FIELDS, (0.8, 0.8, 0.8, 0.2)):
      if field not in overrides:
        params[field] = _per_view_map(lambda s, c=scale: c * s, strength)
  return params


def _per_view_map(fn: Callable[[Any], Any], value: Any) -> Any:
  if isinstance(value, (tuple, list)):
    return tuple(fn(v) for v in value)
  return fn(value)


def _split_views(params: dict[str, Any]) -> list[dict[str, Any]]:
  lengths = {k: len(v) for k, v in params.items()
             if k in PER_VIEW_FIELDS and isinstance(v, (tuple, list))}
  if len(set(lengths.values())) > 1:
    raise ValueError(
        f"per-view fields must all list the same number of views, got"
        f" {lengths}."
    )
  num = next(iter(lengths.values()), 1)
  if num < 1:
    raise ValueError(f"per-view fields need at least one value: {lengths}.")
  return [{k: (v[i] if k in lengths else v) for k, v in params.items()}
          for i in range(num)]


def _check_view(params: Mapping[str, Any]) -> None:
  """Eager checks of what can be checked without the data's shape."""
  for key, value in params.items():
    if key.endswith("_prob"):
      _util.check_prob(key, value)
  for key in ("crop_scale", "blur_sigma", "gain_db", "snr_db"):
    if key in params:
      _util.check_range(key, params[key])
  if params.get("crop_on", "device") not in CROP_ON:
    raise ValueError(f"crop_on must be one of {CROP_ON}, got"
                     f" {params['crop_on']!r}.")
  if params.get("crop_on") == "host" and params.get("image_size") is None:
    raise ValueError("crop_on='host' needs image_size: the size the host"
                     " resizes each view to.")
  if params.get("shift_mode", "circular") not in audio.SHIFT_MODES:
    raise ValueError(
        f"Unknown shift_mode {params['shift_mode']!r}; valid modes are"
        f" {audio.SHIFT_MODES}."
    )


def build_augment(config: Any) -> Augment:
  """Builds the recipe `config.name`, with any field overridden by `config`.

  Args:
    config: a Mapping or ConfigDict with `name` (a key of `PRESETS`) and
      optional overrides of that preset's fields (see `PRESETS[name]
      .defaults`), e.g. `{"name": "simclr", "image_size": 28}`.

  Returns:
    An `Augment`; use it with `make_views(rng, batch, augment)`.

  Raises:
    ValueError: unknown name or field, or an invalid value.

  Example:
    >>> augment = build_augment({"name": "byol", "image_size": 32})
    >>> views = make_views(rng, images, augment, num_views=2)
  """
  items = config_sections.as_dict(config, "the augmentation config")
  name = items.pop("name", None)
  if name not in PRESETS:
    raise ValueError(
        f"Unknown augmentation preset {name!r}; valid names are:"
        f" {', '.join(PRESETS)}."
    )
  preset = PRESETS[name]
  params = _resolve(name, items)
  spec_params = {k: params.pop(k) for k in _SPEC_FIELDS if k in params}
  params.pop("jitter_strength", None)
  views = _split_views(params)
  for view in views:
    _check_view(view)
  spec_transform = None
  if spec_params and (spec_params["time_masks"] or spec_params["freq_masks"]):
    spec_transform = audio.make_spec_transform(**spec_params)
  return Augment(
      name=name,
      modality=preset.modality,
      view_fns=tuple(functools.partial(preset.pipeline, **v) for v in views),
      params=tuple(views),
      spec_transform=spec_transform,
  )
