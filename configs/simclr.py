"""SimCLR (Chen et al. 2020): InfoNCE over the global batch, 2n-2 negatives.

  python -m launch.main --config=configs/simclr.py:fashion_mnist,small --workdir=/tmp/simclr
"""
from configs import common


def get_config(arg: str | None = None):
  config = common.base_config(arg)
  config.method = "simclr"
  config.loss = dict(name="infonce", temperature=0.5, symmetric=False)
  return config
