"""Debiased contrastive learning (Chuang et al. 2020): the reference code's
defaults, t = 0.5 and tau_plus = 0.1, in the SimCLR convention.

  python -m launch.main --config=configs/dcl.py:fashion_mnist,small --workdir=/tmp/dcl
"""
from configs import common


def get_config(arg: str | None = None):
  config = common.base_config(arg)
  config.method = "simclr"
  config.loss = dict(name="dcl", temperature=0.5, tau_plus=0.1)
  return config
