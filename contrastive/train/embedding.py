"""Embeds a whole dataset with a trained encoder, sharded over the mesh."""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from contrastive.train import mesh as mesh_lib


# Cached: the members of a population, and the baselines of a run, share one
# experiment and so one compiled embedding program.
@functools.lru_cache(maxsize=16)
def make_embed_fn(model, preprocess: Callable[[jax.Array], jax.Array],
                  outputs: Sequence[str], mesh: Mesh):
  """A jitted `(variables, x [b, ...]) -> {name: [b, ...]}` in eval mode.

  `preprocess` maps one raw example to the model's input (e.g. uint8 image
  to float in [0, 1]); it is vmapped over the batch inside the program.
  `outputs` must be hashable (a tuple).
  """

  def embed(variables, x):
    inputs = jax.vmap(preprocess)(x)
    out = model.apply(variables, inputs, train=False)
    return {k: out[k].astype(jnp.float32) for k in outputs}

  # Outputs are replicated so that every process (multi-host) can read them.
  return jax.jit(embed, in_shardings=(mesh_lib.replicated(mesh),
                                      mesh_lib.batch_sharding(mesh)),
                 out_shardings=mesh_lib.replicated(mesh))


def subset_indices(num_examples: int, max_examples: int | None) -> np.ndarray:
  """All indices, or `max_examples` evenly spaced ones (deterministic)."""
  if max_examples is None or max_examples >= num_examples:
    return np.arange(num_examples)
  return np.linspace(0, num_examples - 1, int(max_examples)).round().astype(
      np.int64)


def embed_dataset(
    embed_fn, variables: Any, dataset, mesh: Mesh, *, batch_size: int,
    max_examples: int | None = None, metadata: Sequence[str] = (),
) -> dict[str, np.ndarray]:
  """Runs `embed_fn` over `dataset`, or `max_examples` of its examples.

  A subset is evenly spaced over the split rather than its first rows:
  readers store examples grouped (HAPT by subject, FSDD by digit), so a
  prefix would hold one subject or one class. The last batch is padded to a multiple of the data-axis size and the
  padding dropped, so every example is embedded exactly once. Returns the
  outputs, 'label' and the requested metadata as NumPy arrays.
  """
  indices = subset_indices(len(dataset), max_examples)
  n = len(indices)
  data_size = mesh.shape[mesh_lib.DATA_AXIS]
  batch_size = max(data_size, batch_size - batch_size % data_size)
  chunks: dict[str, list[np.ndarray]] = {}
  for start in range(0, n, batch_size):
    idx = indices[start:start + batch_size]
    batch = dataset.get_batch(idx)
    x = np.asarray(batch["x"])
    pad = (-len(idx)) % data_size
    if pad:
      x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
    # Every process reads the same examples; each device takes its rows.
    sharding = mesh_lib.batch_sharding(mesh)
    x = jax.make_array_from_callback(x.shape, sharding, lambda i, x=x: x[i])
    out = embed_fn(variables, x)
    for k, v in out.items():
      chunks.setdefault(k, []).append(np.asarray(v)[: len(idx)])
    for k in ("label", *metadata):
      chunks.setdefault(k, []).append(np.asarray(batch[k]))
  return {k: np.concatenate(v) for k, v in chunks.items()}
