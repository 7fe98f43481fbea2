"""Debiased contrastive learning (Chuang et al. 2020): the reference code's
defaults, t = 0.5 and tau_plus = 0.1, in the SimCLR convention. At the CPU
sizes t is the recipe's SimCLR temperature, so that DCL differs from SimCLR
in tau_plus only.

  python -m launch.main --config=configs/dcl.py:fashion_mnist,small --workdir=/tmp/dcl
"""
from configs import common


def get_config(arg: str | None = None):
  config = common.base_config(arg)
  config.method = "simclr"
  config.loss = dict(name="dcl",
                     temperature=common.in_batch_temperature(config),
                     tau_plus=0.1)
  # ImageNet, ImageNet-100, STL-10: the papers' recipes (configs/common.py).
  common.paper_image_recipe(config, "simclr")
  return config
