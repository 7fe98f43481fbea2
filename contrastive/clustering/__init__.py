"""Cluster-aware negatives and batches: MCL, ClusterNS, balanced batches.

Modules:

- `stages`: multistage contrastive learning (MCL) state and its negative
  masks, pure JAX; `mcl` its config and train-step rule.
- `clusterns`: ClusterNS's online centroids (k-means updated each step);
  the loss that uses them is `contrastive.losses.clusterns_infonce`.
- `balanced`: a cluster-balanced `IndexSampler`; `batching` its config.
- `representation`: what is clustered (model outputs), the k-means
  options, and the timed result.

The between-step work (embed the training split, cluster it, start the
next stage) needs the training experiment, so it lives with the loop in
`contrastive.train.cluster_hooks`; this package never imports
`contrastive.train`. Formulas and defaults: docs/losses.md.
"""
from contrastive.clustering import balanced
from contrastive.clustering import clusterns
from contrastive.clustering import stages

__all__ = ["balanced", "clusterns", "stages"]
