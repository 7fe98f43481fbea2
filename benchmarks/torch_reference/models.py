"""PyTorch twins of `contrastive.models`: same layers, shapes and parameters.

Each class mirrors the Flax module named in its docstring. BatchNorm uses
torch's `momentum = 1 - flax momentum` (0.1 for the project's 0.9) and the
same epsilon. Convolutions have no bias (BN follows them), hidden projection
layers have no bias, the output layer has one, as in `heads.MLPHead`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

BN_MOMENTUM = 0.1  # = 1 - 0.9, flax's convention turned into torch's.
BN_EPS = 1e-5


class BasicBlock(nn.Module):
  """`contrastive.models.resnet.BasicBlock`: two 3x3 convs and a shortcut."""

  def __init__(self, cin: int, cout: int, stride: int):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout, BN_EPS, BN_MOMENTUM)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout, BN_EPS, BN_MOMENTUM)
    self.proj = None
    if stride != 1 or cin != cout:
      self.proj = nn.Sequential(
          nn.Conv2d(cin, cout, 1, stride, bias=False),
          nn.BatchNorm2d(cout, BN_EPS, BN_MOMENTUM))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    residual = x if self.proj is None else self.proj(x)
    return F.relu(y + residual)


class ResNet18(nn.Module):
  """`resnet18(stem='cifar')`: 3x3 stride-1 stem, no max-pool, 2-2-2-2."""

  def __init__(self, in_channels: int, width: int = 64):
    super().__init__()
    self.stem = nn.Sequential(
        nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
        nn.BatchNorm2d(width, BN_EPS, BN_MOMENTUM), nn.ReLU())
    blocks, cin = [], width
    for i in range(4):
      cout = width * 2**i
      for j in range(2):
        blocks.append(BasicBlock(cin, cout, 2 if i > 0 and j == 0 else 1))
        cin = cout
    self.blocks = nn.Sequential(*blocks)
    self.num_features = cin

  def forward(self, images: torch.Tensor) -> torch.Tensor:
    """`[B, C, H, W]` floats in [0, 1] (channels-last memory) -> `[B, F]`."""
    return self.blocks(self.stem(images)).mean(dim=(2, 3))


def hertz_to_mel(hertz: np.ndarray) -> np.ndarray:
  """HTK's mel scale, `2595 log10(1 + f / 700)`."""
  return 2595.0 * np.log10(1.0 + np.asarray(hertz, np.float64) / 700.0)


def mel_weights(num_mel_bins: int, fft_length: int, sample_rate: int,
                lower_hz: float, upper_hz: float) -> np.ndarray:
  """`[fft_length // 2 + 1, num_mel_bins]` triangles linear in mel, peak 1."""
  bins = hertz_to_mel(np.linspace(0.0, sample_rate / 2, fft_length // 2 + 1))
  edges = np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz),
                      num_mel_bins + 2)
  left, center, right = edges[:-2], edges[1:-1], edges[2:]
  up = (bins[:, None] - left) / (center - left)
  down = (right - bins[:, None]) / (right - center)
  return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


class LogMel(nn.Module):
  """`audio_frontend.log_mel_spectrogram`: `[B, T] -> [B, frames, mels]`."""

  def __init__(self, sample_rate: int = 8000, frame_length: int = 200,
               frame_step: int = 80, fft_length: int = 512,
               num_mel_bins: int = 64, lower_hz: float = 20.0,
               log_offset: float = 1e-6):
    super().__init__()
    self.frame_length, self.frame_step = frame_length, frame_step
    self.fft_length, self.log_offset = fft_length, log_offset
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame_length)
                                / frame_length)  # periodic Hann
    self.register_buffer("window", torch.tensor(window, dtype=torch.float32))
    self.register_buffer("weights", torch.from_numpy(mel_weights(
        num_mel_bins, fft_length, sample_rate, lower_hz, sample_rate / 2)))

  def forward(self, wave: torch.Tensor) -> torch.Tensor:
    frames = wave.unfold(-1, self.frame_length, self.frame_step)
    spectrum = torch.fft.rfft(frames * self.window, n=self.fft_length)
    power = spectrum.real**2 + spectrum.imag**2
    return torch.log(power @ self.weights + self.log_offset)


def spec_augment(spec: torch.Tensor, time_max_width: int = 10,
                 time_masks: int = 2, freq_max_width: int = 8,
                 freq_masks: int = 2) -> torch.Tensor:
  """SpecAugment as `augment.audio.spec_augment`: bands set to the mean."""
  b, frames, mels = spec.shape
  mask = torch.zeros_like(spec, dtype=torch.bool)
  for axis, size, max_width, count in ((1, frames, time_max_width, time_masks),
                                       (2, mels, freq_max_width, freq_masks)):
    pos = torch.arange(size, device=spec.device)
    for _ in range(count):
      width = torch.randint(0, max_width + 1, (b, 1), device=spec.device)
      start = (torch.rand(b, 1, device=spec.device)
               * (size - width + 1)).floor()
      band = (pos >= start) & (pos < start + width)  # [b, size]
      mask |= band[:, :, None] if axis == 1 else band[:, None, :]
  mean = spec.mean(dim=(1, 2), keepdim=True)
  return torch.where(mask, mean, spec)


class AudioCNN(nn.Module):
  """`audio_cnn.AudioCNN`: log-mel, input BN, (conv-BN-ReLU x2, avg-pool)."""

  def __init__(self, width: int = 32, depth: int = 4):
    super().__init__()
    self.frontend = LogMel()
    self.input_bn = nn.BatchNorm2d(1, BN_EPS, BN_MOMENTUM)
    layers, cin = [], 1
    for i in range(depth):
      cout = width * 2**i
      for _ in range(2):
        layers += [nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
                   nn.BatchNorm2d(cout, BN_EPS, BN_MOMENTUM), nn.ReLU()]
        cin = cout
      # ceil_mode averages the partial edge window over its valid cells, as
      # flax's 'SAME' avg_pool with count_include_pad=False.
      layers.append(nn.AvgPool2d(2, 2, ceil_mode=True))
    self.layers = nn.Sequential(*layers)
    self.num_features = cin

  def forward(self, wave: torch.Tensor) -> torch.Tensor:
    spec = self.frontend(wave)  # [B, frames, mels]
    if self.training:
      spec = spec_augment(spec)
    x = spec[:, None].contiguous(memory_format=torch.channels_last)
    return self.layers(self.input_bn(x)).mean(dim=(2, 3))


class Block1D(nn.Module):
  """`sensor.ResidualBlock1D` (flax 'SAME' padding; stride-2 output sizes
  agree, its pad is split (1, 2) there and (2, 2) here)."""

  def __init__(self, cin: int, cout: int, kernel: int, stride: int):
    super().__init__()
    self.conv1 = nn.Conv1d(cin, cout, kernel, stride, kernel // 2, bias=False)
    self.bn1 = nn.BatchNorm1d(cout, BN_EPS, BN_MOMENTUM)
    self.conv2 = nn.Conv1d(cout, cout, kernel, 1, kernel // 2, bias=False)
    self.bn2 = nn.BatchNorm1d(cout, BN_EPS, BN_MOMENTUM)
    self.proj = None
    if stride != 1 or cin != cout:
      self.proj = nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False),
                                nn.BatchNorm1d(cout, BN_EPS, BN_MOMENTUM))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
    return F.relu(y + (x if self.proj is None else self.proj(x)))


class ResNet1D(nn.Module):
  """`sensor.ResNet1D`: `[B, T, C]` windows -> `[B, width * 2**(depth-1)]`."""

  def __init__(self, in_channels: int, width: int = 64, depth: int = 3,
               blocks_per_stage: int = 2, kernel_size: int = 5):
    super().__init__()
    self.stem = nn.Sequential(
        nn.Conv1d(in_channels, width, kernel_size, 1, kernel_size // 2,
                  bias=False),
        nn.BatchNorm1d(width, BN_EPS, BN_MOMENTUM), nn.ReLU())
    blocks, cin = [], width
    for i in range(depth):
      for j in range(blocks_per_stage):
        cout = width * 2**i
        blocks.append(Block1D(cin, cout, kernel_size,
                              2 if i > 0 and j == 0 else 1))
        cin = cout
    self.blocks = nn.Sequential(*blocks)
    self.num_features = cin

  def forward(self, windows: torch.Tensor) -> torch.Tensor:
    x = windows.transpose(1, 2)  # [B, C, T]
    return self.blocks(self.stem(x)).mean(dim=2)


class MLPHead(nn.Module):
  """`heads.MLPHead`: (Linear no bias, BN, ReLU) per hidden size, Linear."""

  def __init__(self, cin: int, dims: Sequence[int | None]):
    super().__init__()
    layers = []
    for hidden in dims[:-1]:
      hidden = hidden or cin
      layers += [nn.Linear(cin, hidden, bias=False),
                 nn.BatchNorm1d(hidden, BN_EPS, BN_MOMENTUM), nn.ReLU()]
      cin = hidden
    layers.append(nn.Linear(cin, dims[-1]))
    self.layers = nn.Sequential(*layers)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.layers(x)


class ContrastiveModel(nn.Module):
  """`heads.ContrastiveModel` without a predictor: backbone + projection."""

  def __init__(self, backbone: nn.Module, projection_dims: Sequence[int]):
    super().__init__()
    self.backbone = backbone
    self.projection = MLPHead(backbone.num_features, projection_dims)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.projection(self.backbone(x))


def build_model(config: Mapping[str, Any], input_shape: Sequence[int]
                ) -> ContrastiveModel:
  """The twin of `contrastive.models.build_model(config)`.

  Args:
    config: the project's model config (name, width, depth, stem,
      projection_dims); only float32 is mirrored.
    input_shape: one example's shape as the project lays it out: `[H, W, C]`
      images, `[T]` waveforms or `[T, C]` windows.

  Example:
    >>> model = build_model({'name': 'resnet18', 'width': 64,
    ...                      'projection_dims': (512, 128)}, (28, 28, 1))
  """
  name = config["name"]
  dims = tuple(config["projection_dims"])
  if name == "resnet18":
    if config.get("stem", "cifar") != "cifar":
      raise ValueError("only the 'cifar' (small-image) stem is mirrored.")
    backbone = ResNet18(input_shape[-1], config.get("width", 64))
  elif name == "audio_cnn":
    backbone = AudioCNN(config.get("width", 32), config.get("depth", 4))
  elif name == "sensor_resnet1d":
    backbone = ResNet1D(input_shape[-1], config.get("width", 64),
                        config.get("depth", 3),
                        config.get("blocks_per_stage", 2),
                        config.get("kernel_size", 5))
  else:
    raise ValueError(f"no torch twin of model {name!r}; valid: resnet18,"
                     " audio_cnn, sensor_resnet1d.")
  return ContrastiveModel(backbone, dims)


def param_count(model: nn.Module) -> int:
  """Trainable scalars (BatchNorm running statistics are buffers)."""
  return sum(math.prod(p.shape) for p in model.parameters())
