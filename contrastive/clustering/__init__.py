"""Cluster-aware negatives and batches: MCL, ClusterNS, balanced batches.

Modules:

- `stages`: multistage contrastive learning (MCL) state and its negative
  masks, pure JAX; `mcl` its config and train-step rule; `hooks` the
  between-stage work (embed, cluster, next stage) in the train loop.
- `clusterns`: ClusterNS's online centroids (k-means updated each step);
  the loss that uses them is `contrastive.losses.clusterns_infonce`.
- `balanced`: a cluster-balanced `IndexSampler`; `batching` its config.
- `representation`: embed the training split and cluster it (timed).

Formulas and defaults: docs/losses.md. Only the pure modules are
imported here; `mcl`, `batching`, `hooks` and `representation` depend on
`contrastive.train` and are imported by name.
"""
from contrastive.clustering import balanced
from contrastive.clustering import clusterns
from contrastive.clustering import stages

__all__ = ["balanced", "clusterns", "stages"]
