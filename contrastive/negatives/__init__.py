"""Negative samplers and the MoCo queue, as pure JAX.

Masks follow the losses' convention: a bool array, True = allowed negative,
`[n, n]` at sample level for in-batch (SimCLR) negatives and `[n, k]` for a
queue's. Modules: `queue` (FIFO ring of keys), `masks` (label / cluster
restrictions, MCL), `mining` (top-k and threshold hard negatives), `simans`
(SimANS sampling), `kmeans` (k-means++ and Lloyd, spherical or Euclidean).
The losses that use them (`simans_infonce`, ...) are in `contrastive.losses`,
which imports this package, never the reverse.
"""
from contrastive.negatives import kmeans
from contrastive.negatives import masks
from contrastive.negatives import mining
from contrastive.negatives import queue
from contrastive.negatives import simans

__all__ = ["kmeans", "masks", "mining", "queue", "simans"]
