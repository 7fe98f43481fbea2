"""Contrastive losses as pure JAX functions returning `(loss, aux)`.

Inputs are projections `[n, d]` (L2-normalised inside); every loss computes
in float32 and returns `aux` with at least the mean positive and negative
cosine similarity (`pos_sim`, `neg_sim`) and the top-1 accuracy of the
positive among the candidates (`top1`). Conventions and formulas:
docs/losses.md, summarised in each function's docstring.

Functions, by method:

- `infonce`: InfoNCE / NT-Xent: SimCLR (2n-2 negatives), CLIP-symmetric, MoCo
  queue
- `debiased_infonce`: DCL (Chuang et al. 2020)
- `hard_negative_infonce`: HCL (Robinson et al. 2021)
- `filtered_infonce`, `dual_view_moco`: MoCo with hard-negative filtering, both
  directions
- `supervised_infonce`: SupCon (Khosla et al. 2020)
- `kernel_conditional_infonce`: CCL-K (Tsai et al. 2022)
- `decoupled_uniformity`: decoupled uniformity with a kernel prior (Dufumier et
  al. 2023)
- `simans_infonce`: InfoNCE over SimANS-drawn negatives (Zhou et al. 2022)
- `clusterns_infonce`: ClusterNS (Deng et al. 2023)

SimANS's draw comes from `contrastive.negatives.simans`, a package below
this one. ClusterNS's centroids are kept and updated by
`contrastive.clustering.clusterns`, above it, and passed in as an argument.
"""
from contrastive.losses.clusterns import clusterns_infonce
from contrastive.losses.debiased import debiased_infonce
from contrastive.losses.debiased import hard_negative_infonce
from contrastive.losses.decoupled_uniformity import decoupled_uniformity
from contrastive.losses.infonce import infonce
from contrastive.losses.kernel_conditional import kernel_conditional_infonce
from contrastive.losses.kernels import condition_kernel
from contrastive.losses.kernels import conditional_weights
from contrastive.losses.moco_filtered import dual_view_moco
from contrastive.losses.moco_filtered import filtered_infonce
from contrastive.losses.simans import simans_infonce
from contrastive.losses.supcon import supervised_infonce

__all__ = [
    "clusterns_infonce",
    "condition_kernel",
    "conditional_weights",
    "debiased_infonce",
    "decoupled_uniformity",
    "dual_view_moco",
    "filtered_infonce",
    "hard_negative_infonce",
    "infonce",
    "kernel_conditional_infonce",
    "simans_infonce",
    "supervised_infonce",
]
