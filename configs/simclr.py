"""SimCLR (Chen et al. 2020): InfoNCE over the global batch, 2n-2 negatives.

t = 0.5 (the paper's CIFAR-10 value); at the CPU sizes, the dataset's
recipe temperature (configs/common.py, chosen by measurement).

  python -m launch.main --config=configs/simclr.py:fashion_mnist,small --workdir=/tmp/simclr
"""
from configs import common


def get_config(arg: str | None = None):
  config = common.base_config(arg)
  config.method = "simclr"
  config.loss = dict(name="infonce",
                     temperature=common.in_batch_temperature(config),
                     symmetric=False)
  # ImageNet, ImageNet-100, STL-10: the papers' recipes (configs/common.py).
  common.paper_image_recipe(config, "simclr")
  return config
