"""Hard-negative reweighting (Robinson et al. 2021): beta = 1 (their best on
STL-10), tau_plus = 0.1, t = 0.5, gradients through the weights. At the
CPU sizes t is the recipe's SimCLR temperature (as for DCL).

  python -m launch.main --config=configs/hcl.py:fashion_mnist,small --workdir=/tmp/hcl
"""
from configs import common


def get_config(arg: str | None = None):
  config = common.base_config(arg)
  config.method = "simclr"
  config.loss = dict(name="hcl",
                     temperature=common.in_batch_temperature(config),
                     tau_plus=0.1, beta=1.0)
  # ImageNet, ImageNet-100, STL-10: the papers' recipes (configs/common.py).
  common.paper_image_recipe(config, "simclr")
  return config
