"""Dual-view momentum contrast with hard-negative filtering: MoCo's queue,
both directions, and only each query's most similar queue negatives.

  python -m launch.main --config=configs/moco_filtered.py:uci_hapt,small --workdir=/tmp/mocof
"""
from configs import common


def get_config(arg: str | None = None):
  config = common.base_config(arg)
  config.method = "moco"
  # Keep the top 25 % of the queue; use `threshold` instead for a cosine cut.
  config.loss = dict(name="moco_filtered", temperature=0.2,
                     top_k=config.moco.queue_size // 4)
  return config
