"""Kernel-conditional contrastive learning, CCL-K (Tsai et al. 2022).

The argument's third part picks the mode: `hard_negative` (default; the
condition is the representation itself) or `fair` (conditioned on the
dataset's nuisance variable: the speaker for fsdd, the subject for uci_hapt),
e.g. configs/cclk.py:fsdd,small,fair.
"""
from configs import common

MODES = ("hard_negative", "fair")


def get_config(arg: str | None = None):
  parts = (arg or "fashion_mnist").split(",")
  mode = "hard_negative"
  if parts[-1] in MODES:
    mode = parts.pop()
  config = common.base_config(",".join(parts))
  config.method = "simclr"
  if mode == "fair":
    condition = config.eval.nuisance
    if condition is None:
      raise ValueError(
          f"fair mode needs a nuisance variable; dataset {config.dataset!r}"
          " has none (use fsdd or uci_hapt, or hard_negative mode).")
    # Same-speaker (subject) samples weigh 1 / (m + lam): the reference's
    # fair runs used lam = 0.01.
    kernel = dict(kernel="categorical", kernel_scale=1.0, lam=0.01)
  else:
    condition = "representation"
    # The reference (lam 100, temp_z 500) conditions on 2048-d unnormalised
    # backbone features; on unit-norm projections that RBF is flat (weights
    # vary by 0.1 %), so the scale is 1 and lam 1 here (weights vary ~24-100 %).
    kernel = dict(kernel="rbf", kernel_scale=1.0, lam=1.0)
  config.loss = dict(name="cclk", mode=mode, condition=condition,
                     temperature=0.1, **kernel)
  return config
