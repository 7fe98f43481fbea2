"""MoCo v2 (He et al. 2020; Chen et al. 2020): a queue of keys from a
momentum encoder; the EMA follows a cosine schedule 0.99 -> 0.999
(solo-learn's MoCo v2+ recipe); t = 0.2 with the MLP head.

  python -m launch.main --config=configs/moco.py:fashion_mnist,small --workdir=/tmp/moco
"""
from configs import common


def get_config(arg: str | None = None):
  config = common.base_config(arg)
  config.method = "moco"
  # symmetric_queue: also score q2 -> k1 against the queue (MoCo v2+).
  config.loss = dict(name="infonce", temperature=0.2, symmetric_queue=True)
  # ImageNet, ImageNet-100, STL-10: the papers' recipes (configs/common.py).
  common.paper_image_recipe(config, "moco")
  return config
