"""Decoupled uniformity (Dufumier et al. 2023) without a prior: uniformity of
the view centroids, t = 2.

  python -m launch.main --config=configs/decoupled_uniformity.py:uci_hapt,small --workdir=/tmp/du
"""
from configs import common


def get_config(arg: str | None = None):
  config = common.base_config(arg)
  config.method = "simclr"
  config.loss = dict(name="decoupled_uniformity", t=2.0)
  return config
