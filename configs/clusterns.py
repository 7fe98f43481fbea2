"""ClusterNS (Deng et al. 2023): online k-means centroids give each anchor a
hard negative (its second-nearest centroid) and flag in-batch samples of its
cluster as suspected false negatives.

The argument is DATASET[,SIZE][,remove|keep][,balanced]: false negatives are
handled by the bidirectional margin loss by default (`margin`), or removed
from the denominator (`remove`), or left alone (`keep`); `balanced` adds
cluster-balanced batches, e.g.

  python -m launch.main --config=configs/clusterns.py:fsdd,small --workdir=/tmp/cns
  python -m launch.main --config=configs/clusterns.py:uci_hapt,small,remove --workdir=/tmp/cns_rm
"""
from configs import common
from configs import mcl

MODES = ("margin", "remove", "keep")


def get_config(arg: str | None = None):
  rest, options = mcl.pop_options(arg, (*MODES, "balanced"))
  modes = options & set(MODES)
  if len(modes) > 1:
    raise ValueError(f"choose one false-negative mode of {', '.join(MODES)},"
                     f" got {sorted(modes)} in {arg!r}.")
  config = common.base_config(rest)
  config.method = "simclr"
  # The reference's K = 128, start at mean cosine 0.4, BML alpha 0.2, beta
  # 0.5, weight 1e-4; its t = 0.05 is for sentence embeddings: here t is the
  # project's SimCLR temperature, so ClusterNS and SimCLR runs differ only
  # in the ClusterNS terms. K must not exceed the global batch (seeding).
  config.loss = dict(
      name="clusterns", temperature=common.in_batch_temperature(config),
      num_clusters=128,
      centroid_momentum=0.9, start_similarity=0.4,
      false_negatives=modes.pop() if modes else "margin",
      margin_alpha=0.2, margin_beta=0.5, margin_weight=1e-4)
  if config.size == "tiny":
    config.loss.num_clusters = 8
  if "balanced" in options:
    config.balanced_batches = mcl.balanced_batches(config.size)
  return config
