"""Plain NumPy helpers shared by the loss tests' float64 references."""
from __future__ import annotations

import math

import numpy as np


def numeric_grad(f, x, eps=1e-6):
  """Central finite differences of a float64 scalar function."""
  x = np.asarray(x, np.float64)
  grad = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    up, down = x.copy(), x.copy()
    up[idx] += eps
    down[idx] -= eps
    grad[idx] = (f(up) - f(down)) / (2 * eps)
  return grad


def np_kernel(c, kernel, scale):
  """The condition kernel K[i, j] = k(c_i, c_j), unit diagonal, by loops
  (docs/losses.md, CCL-K)."""
  c = np.asarray(c, np.float64)
  c = c[:, None] if c.ndim == 1 else c
  n = c.shape[0]
  k = np.ones((n, n))
  for i in range(n):
    for j in range(n):
      if i == j:
        continue
      diff, dot = c[i] - c[j], float(c[i] @ c[j])
      if kernel == "rbf":
        k[i, j] = math.exp(-float(diff @ diff) / scale)
      elif kernel == "laplacian":
        k[i, j] = math.exp(-math.sqrt(float(diff @ diff)) / scale)
      elif kernel == "cosine":
        k[i, j] = dot / (np.linalg.norm(c[i]) * np.linalg.norm(c[j]))
      elif kernel == "linear":
        k[i, j] = dot / scale
      elif kernel == "polynomial":
        k[i, j] = dot**3 / scale
      elif kernel == "categorical":
        k[i, j] = float(np.all(c[i] == c[j]))
      else:
        raise NotImplementedError(kernel)
  return k
