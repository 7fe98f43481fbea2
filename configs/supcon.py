"""Supervised contrastive learning (Khosla et al. 2020): a label-aware
ceiling for the self-supervised methods; t = 0.1.

  python -m launch.main --config=configs/supcon.py:uci_hapt,small --workdir=/tmp/supcon
"""
from configs import common


def get_config(arg: str | None = None):
  config = common.base_config(arg)
  config.method = "simclr"
  config.loss = dict(name="supcon", temperature=0.1)
  return config
