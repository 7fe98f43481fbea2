"""SimANS (Zhou et al. 2022) on MoCo: each query's negatives are drawn from
its `top_n` most similar queue keys, with probability
exp(-a (s_neg - s_pos - b)^2), around the positive's score; InfoNCE over the
drawn ones (contrastive/losses/simans.py).

The paper's a = 0.5, b = 0 act on its retrievers' logits; ours are cosines
divided by t, so the same a on the logits is a / t^2 on cosines: 12.5 at
t = 0.2. Sizes: a quarter of the queue ranked, a quarter of those drawn.

  python -m launch.main --config=configs/simans.py:fashion_mnist,small --workdir=/tmp/simans
"""
from configs import common


def get_config(arg: str | None = None):
  config = common.base_config(arg)
  config.method = "moco"
  top_n = config.moco.queue_size // 4
  # symmetric_queue: also q2 -> k1 against the queue, as configs/moco.py.
  config.loss = dict(name="simans", temperature=0.2, a=12.5, b=0.0,
                     top_n=top_n, num_samples=top_n // 4,
                     symmetric_queue=True)
  return config
