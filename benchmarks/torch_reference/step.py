"""PyTorch SimCLR and MoCo train steps mirroring `contrastive.train.step`.

What each step does, as the JAX step with the configs of configs/simclr.py
and configs/moco.py:

* SimCLR: both views through the encoder in one batch (BatchNorm statistics
  over both views), NT-Xent over the 2n embeddings with 2n - 2 negatives at
  t = 0.5, backward, LARS.
* MoCo v2: the momentum encoder (training-mode BN, no gradient) on both
  views, the online encoder on both views, queue InfoNCE in both directions
  (q1 -> k2 and q2 -> k1, averaged) at t = 0.2 against a 4,096-key queue,
  backward, LARS, the EMA of the momentum encoder, then k2 enqueued.

The views arrive already augmented (torch libraries augment in DataLoader
workers, outside the step); SpecAugment runs inside the audio model as in
ours. Models are in channels-last memory format.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Mapping, Sequence

import torch
from torch.nn import functional as F

from benchmarks.torch_reference import models


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float
            ) -> torch.Tensor:
  """SimCLR's loss: mean over 2n anchors, the other view positive."""
  n = z1.shape[0]
  z = F.normalize(torch.cat([z1, z2]), dim=1)
  logits = (z @ z.T) / temperature
  self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
  logits = logits.masked_fill(self_mask, float("-inf"))
  targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
  return F.cross_entropy(logits, targets.to(z.device))


def queue_infonce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                  temperature: float) -> torch.Tensor:
  """MoCo: positive `<q_i, k_i>`, negatives the (normalised) queue rows."""
  q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
  pos = (q * k).sum(dim=1, keepdim=True)
  logits = torch.cat([pos, q @ queue.T], dim=1) / temperature
  return F.cross_entropy(
      logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


class LARS:
  """optax.lars: decay, trust ratio (on kernels), -lr, then momentum trace.

  Weight decay and the trust ratio apply to tensors of rank > 1 only, as
  `contrastive.train.optimizer.decay_mask`.
  """

  def __init__(self, params: Sequence[torch.nn.Parameter], lr: float,
               momentum: float = 0.9, weight_decay: float = 1e-6,
               trust_coefficient: float = 0.001):
    self.params = list(params)
    self.kernels = [p for p in self.params if p.ndim > 1]
    self.lr, self.momentum = lr, momentum
    self.weight_decay, self.trust = weight_decay, trust_coefficient
    self.buffers = [torch.zeros_like(p) for p in self.params]

  def zero_grad(self) -> None:
    for p in self.params:
      p.grad = None

  @torch.no_grad()
  def step(self) -> None:
    grads = [p.grad for p in self.params]
    kernel_grads = [p.grad for p in self.kernels]
    torch._foreach_add_(kernel_grads, self.kernels, alpha=self.weight_decay)
    p_norm = torch.stack(torch._foreach_norm(self.kernels))
    g_norm = torch.stack(torch._foreach_norm(kernel_grads))
    ratio = torch.where((p_norm == 0) | (g_norm == 0), 1.0,
                        self.trust * p_norm / g_norm)
    torch._foreach_mul_(kernel_grads, list(ratio.unbind()))
    torch._foreach_mul_(self.buffers, self.momentum)
    torch._foreach_add_(self.buffers, grads, alpha=-self.lr)
    torch._foreach_add_(self.params, self.buffers)


def make_step(model_config: Mapping[str, Any], input_shape: Sequence[int],
              *, method: str, batch_size: int, temperature: float,
              learning_rate: float, optimizer: Mapping[str, Any],
              queue_size: int = 4096, ema: float = 0.99, seed: int = 0,
              device: str = "cpu"
              ) -> tuple[Callable[[torch.Tensor], float], torch.nn.Module]:
  """`(step(views) -> loss, model)`; `views` is `[2 * batch_size, ...]`
  on `device`.

  Example:
    >>> step, model = make_step(cfg, (28, 28, 1), method='simclr',
    ...     batch_size=256, temperature=0.5, learning_rate=0.3,
    ...     optimizer={'momentum': 0.9, 'weight_decay': 1e-6})
    >>> loss = step(views)
  """
  if method not in ("simclr", "moco"):
    raise ValueError(f"method must be 'simclr' or 'moco', got {method!r}.")
  torch.manual_seed(seed)
  model = models.build_model(model_config, input_shape)
  model = model.to(device, memory_format=torch.channels_last).train()
  opt = LARS(model.parameters(), learning_rate,
             momentum=optimizer.get("momentum", 0.9),
             weight_decay=optimizer.get("weight_decay", 1e-6),
             trust_coefficient=optimizer.get("trust_coefficient", 0.001))
  b = batch_size

  if method == "simclr":
    def step(views: torch.Tensor) -> float:
      opt.zero_grad()
      z = model(views)
      loss = nt_xent(z[:b], z[b:], temperature)
      loss.backward()
      opt.step()
      return loss.detach()
    return step, model

  key_model = copy.deepcopy(model).train()
  for p in key_model.parameters():
    p.requires_grad_(False)
  dim = model_config["projection_dims"][-1]
  queue = F.normalize(torch.randn(queue_size, dim, device=device), dim=1)
  pointer = [0]
  online, keys = list(model.parameters()), list(key_model.parameters())

  def moco_step(views: torch.Tensor) -> float:
    with torch.no_grad():
      k = key_model(views)
    opt.zero_grad()
    q = model(views)
    loss = (queue_infonce(q[:b], k[b:], queue, temperature)
            + queue_infonce(q[b:], k[:b], queue, temperature)) / 2
    loss.backward()
    opt.step()
    with torch.no_grad():
      torch._foreach_mul_(keys, ema)
      torch._foreach_add_(keys, online, alpha=1.0 - ema)
      start = pointer[0]
      queue[start:start + b] = F.normalize(k[b:], dim=1)
      pointer[0] = (start + b) % queue_size
    return loss.detach()
  return moco_step, model


def random_views(input_shape: Sequence[int], batch_size: int, seed: int = 0
                 ) -> torch.Tensor:
  """`[2 * batch_size, ...]` stand-in augmented views in the torch layout.

  Images `[H, W, C]` become NCHW channels-last floats in [0, 1]; waveforms
  `[T]` and IMU windows `[T, C]` keep their layout (normal noise).
  """
  gen = torch.Generator().manual_seed(seed)
  n = 2 * batch_size
  if len(input_shape) == 3:
    h, w, c = input_shape
    x = torch.rand(n, c, h, w, generator=gen)
    return x.contiguous(memory_format=torch.channels_last)
  return 0.1 * torch.randn(n, *input_shape, generator=gen)
