"""Encoders with projection (and predictor) heads for images, audio and IMU.

Backbones map a batch to features `[B, F]`; `ContrastiveModel` adds the heads
and returns `{'features', 'projection'[, 'prediction']}`. `build_model` makes
one from a config (see its docstring for every field).
"""
from contrastive.models.audio_cnn import AudioCNN
from contrastive.models.audio_frontend import log_mel_spectrogram
from contrastive.models.audio_frontend import mel_filterbank
from contrastive.models.builder import build_model
from contrastive.models.builder import default_config
from contrastive.models.builder import MODELS
from contrastive.models.builder import param_count
from contrastive.models.heads import ContrastiveModel
from contrastive.models.heads import MLPHead
from contrastive.models.resnet import resnet10
from contrastive.models.resnet import resnet18
from contrastive.models.resnet import resnet50
from contrastive.models.resnet import ResNet
from contrastive.models.sensor import ResNet1D
from contrastive.models.vit import ViT
from contrastive.models.vit import vit_small
from contrastive.models.vit import vit_tiny

__all__ = [
    "AudioCNN",
    "ContrastiveModel",
    "MLPHead",
    "MODELS",
    "ResNet",
    "ResNet1D",
    "ViT",
    "build_model",
    "default_config",
    "log_mel_spectrogram",
    "mel_filterbank",
    "param_count",
    "resnet10",
    "resnet18",
    "resnet50",
    "vit_small",
    "vit_tiny",
]
