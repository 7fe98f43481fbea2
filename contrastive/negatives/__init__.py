"""Negative samplers and the MoCo queue, as pure JAX.

Masks follow the losses' convention: a bool array, True = allowed negative,
`[n, n]` at sample level for in-batch (SimCLR) negatives and `[n, k]` for a
queue's. Modules: `queue` (FIFO ring of keys), `masks` (label / cluster
restrictions, MCL), `mining` (top-k and threshold hard negatives), `simans`
(SimANS sampling) and `simans_loss` (InfoNCE over SimANS-drawn negatives),
`kmeans` (k-means++ and Lloyd, spherical or Euclidean).
"""
from contrastive.negatives import kmeans
from contrastive.negatives import masks
from contrastive.negatives import mining
from contrastive.negatives import queue
from contrastive.negatives import simans
from contrastive.negatives import simans_loss

__all__ = ["kmeans", "masks", "mining", "queue", "simans", "simans_loss"]
