"""Cluster-balanced batches: each global batch drawn from a few clusters.

TAS-Balanced (Hofstätter et al., SIGIR 2021) clusters the training queries
once and samples each batch from one cluster; NGAME (Dahiya et al., WSDM
2023) and "Embedding and clustering your data" build batches from clusters
of the current embeddings, refreshed during training. Examples of one
cluster resemble each other, so in-batch negatives become hard without a
mining pass.

`ClusterBalancedSampler` is an `IndexSampler` (`contrastive.data.iterator`):
it returns the GLOBAL order of example indices for an epoch, which
`BatchIterator` cuts into global batches and slices per process. Every
global batch is `clusters_per_batch` blocks of `batch_size /
clusters_per_batch` examples, each block from one cluster. The order depends
only on (seed, epoch, assignments), so every process computes the same one.
"""
from __future__ import annotations

import numpy as np


class ClusterBalancedSampler:
  """Epoch orders whose global batches each come from a few clusters.

  One pass: every cluster's members are shuffled and cut into blocks of
  `block = batch_size // clusters_per_batch`; a cluster's last, partial block
  is completed with other members of the same cluster (drawn from its start
  again, so a cluster smaller than a block repeats members); the blocks of
  all clusters are shuffled together and read `clusters_per_batch` at a
  time. A pass visits every example at least once. An epoch is one pass, or
  with `epoch_size` exactly that many examples taken from consecutive fresh
  passes (to align epochs with re-clustering every N steps: `epoch_size = N
  * batch_size`).

  Args:
    batch_size: the GLOBAL batch size.
    clusters_per_batch: blocks (hence at most this many clusters) per batch;
      must divide `batch_size`.
    seed: with the epoch number, seeds the order.
    epoch_size: examples per epoch, a multiple of `batch_size`; None: one pass.
    assignments: `[N]` cluster id of every example (ids >= 0); may be set
      later with `set_assignments`, before the first `epoch_order`.

  Example:
    >>> sampler = ClusterBalancedSampler(256, clusters_per_batch=2, seed=0,
    ...                                  assignments=kmeans_result.assignments)
    >>> it = BatchIterator(ds, 256, seed=0, sampler=sampler,
    ...                    process_index=jax.process_index(),
    ...                    process_count=jax.process_count())
  """

  def __init__(self, batch_size: int, *, clusters_per_batch: int = 1,
               seed: int = 0, epoch_size: int | None = None,
               assignments: np.ndarray | None = None):
    if batch_size < 1 or clusters_per_batch < 1 or seed < 0:
      raise ValueError(
          f"batch_size and clusters_per_batch must be >= 1 and seed >= 0, got"
          f" {batch_size}, {clusters_per_batch}, {seed}.")
    if batch_size % clusters_per_batch:
      raise ValueError(
          f"clusters_per_batch={clusters_per_batch} must divide the global"
          f" batch size {batch_size} (each cluster fills an equal block).")
    if epoch_size is not None and (epoch_size < batch_size
                                   or epoch_size % batch_size):
      raise ValueError(f"epoch_size must be a positive multiple of the batch"
                       f" size {batch_size}, got {epoch_size}.")
    self.batch_size, self.seed = int(batch_size), int(seed)
    self.clusters_per_batch = int(clusters_per_batch)
    self.block = self.batch_size // self.clusters_per_batch
    self.epoch_size = None if epoch_size is None else int(epoch_size)
    self._members: list[np.ndarray] | None = None
    if assignments is not None:
      self.set_assignments(assignments)

  def set_assignments(self, assignments: np.ndarray) -> None:
    """Uses `[N]` cluster ids (>= 0) for the epochs ordered from now on."""
    a = np.asarray(assignments)
    if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.integer):
      raise ValueError(f"assignments must be a non-empty [N] integer array,"
                       f" got {a.dtype} {a.shape}.")
    if np.any(a < 0):
      raise ValueError("assignments must be cluster ids >= 0; got negative"
                       " ids (clusters not computed yet?).")
    order = np.argsort(a, kind="stable")
    ids, starts = np.unique(a[order], return_index=True)
    self._members = np.split(order.astype(np.int64), starts[1:])
    self.num_clusters = len(ids)

  def _one_pass(self, rng: np.random.Generator) -> np.ndarray:
    blocks = []
    for members in self._members:
      members = rng.permutation(members)
      need = -(-len(members) // self.block) * self.block
      blocks.append(np.resize(members, need).reshape(-1, self.block))
    blocks = np.concatenate(blocks)
    return blocks[rng.permutation(len(blocks))].reshape(-1)

  def epoch_order(self, epoch: int) -> np.ndarray:
    """The global order of epoch `epoch` (a pure function of it)."""
    if self._members is None:
      raise ValueError("ClusterBalancedSampler has no cluster assignments;"
                       " call set_assignments first.")
    if self.epoch_size is None:
      return self._one_pass(np.random.default_rng([self.seed, int(epoch)]))
    passes, total, p = [], 0, 0
    while total < self.epoch_size:
      rng = np.random.default_rng([self.seed, int(epoch), p])
      passes.append(self._one_pass(rng))
      total, p = total + len(passes[-1]), p + 1
    return np.concatenate(passes)[:self.epoch_size]
