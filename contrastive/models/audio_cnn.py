"""A 2-D CNN audio encoder over log-mel spectrograms computed on device.

The module takes raw waveforms `[B, T]`, computes the log-mel spectrogram
with `audio_frontend.log_mel_spectrogram` inside the jitted computation,
optionally applies a per-example spectrogram augmentation (e.g. SpecAugment,
Park et al. 2019) when training, and encodes the `[frames, mels]` image with
`depth` blocks of (3x3 conv, BN, ReLU) x 2 followed by 2x2 average pooling,
in the style of the PANNs CNNs (Kong et al. 2020). Channels double from
`width` at every block; the output is the mean over time and frequency.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.models import _common
from contrastive.models import batch_norm as bn_lib
from contrastive.models import conv as conv_lib
from contrastive.models import audio_frontend

Array = jax.Array
# (rng, spec [frames, mels]) -> spec [frames, mels], applied per example.
SpecTransform = Callable[[Array, Array], Array]


class AudioCNN(nn.Module):
  """Waveform -> log-mel -> CNN -> features `[B, width * 2**(depth - 1)]`.

  Attributes:
    width: channels of the first conv block (doubled at each block).
    depth: number of conv blocks (each halves time and frequency).
    sample_rate, frame_length, frame_step, fft_length, num_mel_bins,
      lower_edge_hertz, upper_edge_hertz, log_offset: the front end's
      arguments, see `audio_frontend.log_mel_spectrogram` (frame sizes are in
      samples: 200 / 80 are 25 ms / 10 ms at 8 kHz).
    rng_collection: name of the rng stream `spec_transform` draws from.
    bn_momentum: decay of BatchNorm's running averages.
    bn_epsilon: BatchNorm's variance offset.
    dtype: compute dtype of the CNN; the front end always runs in float32.

  A BatchNorm with a single channel first standardises the log-mel values
  (whose scale depends on the recording level), as PANNs' input BN does.

  Example:
    >>> model = AudioCNN(width=8, depth=2)
    >>> wave = jnp.zeros((2, 8000))
    >>> variables = model.init(jax.random.key(0), wave, train=False)
    >>> model.apply(variables, wave, train=False).shape
    (2, 16)
  """

  width: int = 32
  depth: int = 4
  sample_rate: int = 8000
  frame_length: int = 200
  frame_step: int = 80
  fft_length: Optional[int] = 512
  num_mel_bins: int = 64
  lower_edge_hertz: float = 20.0
  upper_edge_hertz: Optional[float] = None
  log_offset: float = 1e-6
  rng_collection: str = "spec_augment"
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = jnp.float32
  # 'auto', 'xla' or 'saved_input': see contrastive/models/conv.py.
  conv_backward: str = "auto"
  # 'auto', 'reduce' or 'matmul': see contrastive/models/batch_norm.py.
  bn_sums: str = "auto"

  def __post_init__(self) -> None:
    for name in ("width", "depth", "sample_rate", "frame_length",
                 "frame_step", "num_mel_bins"):
      _common.check_positive_int(name, getattr(self, name))
    if self.fft_length is not None:
      _common.check_positive_int("fft_length", self.fft_length)
    # Builds the filterbank once to raise on bad front-end values now.
    audio_frontend.mel_filterbank(
        num_mel_bins=self.num_mel_bins,
        fft_length=audio_frontend.resolve_fft_length(
            self.frame_length, self.fft_length
        ),
        sample_rate=self.sample_rate,
        lower_edge_hertz=self.lower_edge_hertz,
        upper_edge_hertz=self.upper_edge_hertz,
    )
    if not float(self.log_offset) > 0:
      raise ValueError(f"log_offset must be > 0, got {self.log_offset!r}.")
    _common.check_bn(self.bn_momentum, self.bn_epsilon)
    _common.check_dtype(self.dtype)
    _common.check_choice("conv_backward", self.conv_backward,
                         conv_lib.CONV_BACKWARDS)
    _common.check_choice("bn_sums", self.bn_sums, bn_lib.BN_SUMS)
    super().__post_init__()

  @property
  def num_features(self) -> int:
    return self.width * 2 ** (self.depth - 1)

  def spectrogram(self, waveform: Array) -> Array:
    """The module's log-mel front end: `[..., T] -> [..., frames, mels]`."""
    return audio_frontend.log_mel_spectrogram(
        waveform,
        sample_rate=self.sample_rate,
        frame_length=self.frame_length,
        frame_step=self.frame_step,
        fft_length=self.fft_length,
        num_mel_bins=self.num_mel_bins,
        lower_edge_hertz=self.lower_edge_hertz,
        upper_edge_hertz=self.upper_edge_hertz,
        log_offset=self.log_offset,
    )

  @nn.compact
  def __call__(
      self,
      waveform: Array,
      *,
      train: bool,
      spec_transform: Optional[SpecTransform] = None,
  ) -> Array:
    """Encodes `waveform [B, T]` into features `[B, F]`.

    Args:
      waveform: `[B, T]` float samples, all clips of the same length.
      train: use batch statistics in BN (and apply `spec_transform`).
      spec_transform: optional `(rng, spec [frames, mels]) -> spec`, applied
        to each example with its own key split from the `rng_collection`
        stream, only when `train=True` (pass
        `rngs={'spec_augment': key}` to `apply`).

    Returns:
      `[B, F]` features in `dtype`.
    """
    checks.check_rank("waveform", waveform, 2, "[batch, samples]")
    spec = self.spectrogram(waveform)  # [B, frames, mels], >= float32
    if train and spec_transform is not None:
      keys = jax.random.split(
          self.make_rng(self.rng_collection), spec.shape[0]
      )
      spec = jax.vmap(spec_transform)(keys, spec)
    conv = functools.partial(
        nn.Conv,
        conv_general_dilated=conv_lib.conv_general_dilated_fn(
            self.conv_backward),
        kernel_size=(3, 3),
        padding="SAME",
        use_bias=False,
        dtype=self.dtype,
        param_dtype=jnp.float32,
        kernel_init=_common.conv_kernel_init,
    )
    norm = functools.partial(
        bn_lib.BatchNorm,
        sums=self.bn_sums,
        use_running_average=not train,
        momentum=self.bn_momentum,
        epsilon=self.bn_epsilon,
        dtype=self.dtype,
        param_dtype=jnp.float32,
    )
    # Normalised from float32; BN returns `dtype`.
    x = norm(name="input_bn")(spec[..., None])
    for i in range(self.depth):
      channels = self.width * 2**i
      x = nn.relu(norm()(conv(channels)(x)))
      x = nn.relu(norm()(conv(channels)(x)))
      # 'SAME' pooling keeps at least one cell for short clips.
      x = nn.avg_pool(x, (2, 2), (2, 2), "SAME", count_include_pad=False)
      x = x.astype(self.dtype)  # the float32 window counts promote x
    return jnp.mean(x, axis=(1, 2))
