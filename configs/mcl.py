"""Multistage contrastive learning, MCL ("Learning the Unlearned").

Stage 1 is the base method (SimCLR by default); after each stage the training
set is embedded and clustered, and the next stage draws each anchor's
negatives only from its clusters of all previous stages. The evaluated
representation concatenates every stage's features.

The argument is DATASET[,SIZE][,BASE][,balanced]: BASE is `simclr` (default,
in-batch negatives) or `moco` (queue negatives, restricted through each
row's example index); `balanced` adds cluster-balanced batches
(contrastive/clustering/batching.py), e.g.

  python -m launch.main --config=configs/mcl.py:uci_hapt,small --workdir=/tmp/mcl
  python -m launch.main --config=configs/mcl.py:fsdd,small,moco --workdir=/tmp/mcl_moco
"""
from configs import common

BASES = ("simclr", "moco")
OPTIONS = (*BASES, "balanced")


def pop_options(arg, options):
  """'fsdd,small,moco' -> ('fsdd,small', {'moco'}): trailing option names."""
  parts = [p for p in (arg or "fashion_mnist").split(",") if p]
  chosen = set()
  while len(parts) > 1 and parts[-1] in options:
    chosen.add(parts.pop())
  return ",".join(parts), chosen


def balanced_batches(size: str) -> dict:
  """Cluster-balanced batches for `size` (a few clusters per global batch)."""
  return {
      "full": dict(num_clusters=64, clusters_per_batch=4,
                   recluster_every=1000),
      # The CPU sizes train a few thousand steps: recluster a few times.
      "cpu": dict(num_clusters=32, clusters_per_batch=4,
                  recluster_every=200),
      "small": dict(num_clusters=32, clusters_per_batch=4,
                    recluster_every=200),
      "tiny": dict(num_clusters=4, clusters_per_batch=2, recluster_every=2,
                   kmeans=dict(num_iters=5)),
  }[size]


def get_config(arg: str | None = None):
  rest, options = pop_options(arg, OPTIONS)
  config = common.base_config(rest)
  if "moco" in options and "simclr" in options:
    raise ValueError(f"choose one base method of {', '.join(BASES)}, got"
                     f" both in {arg!r}.")
  config.method = "moco" if "moco" in options else "simclr"
  if config.method == "moco":
    config.loss = dict(name="infonce", temperature=0.2, symmetric_queue=True)
  else:
    config.loss = dict(name="infonce",
                       temperature=common.in_batch_temperature(config),
                       symmetric=False)
  # num_clusters ~ the number of classes; min_negatives is per anchor at the
  # sample level (in SimCLR mode each sample gives two negative views).
  config.mcl = dict(
      num_stages=2, num_clusters=10, steps_per_stage=0, fresh_encoder=True,
      min_negatives=8, fallback="all", cluster_output="features",
      kmeans=dict(num_iters=50, spherical=True))
  if config.size == "tiny":
    config.mcl.update(num_clusters=2, min_negatives=2,
                      kmeans=dict(num_iters=5, spherical=True))
  if "balanced" in options:
    config.balanced_batches = balanced_batches(config.size)
  return config
