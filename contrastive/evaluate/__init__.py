"""Evaluation of frozen representations: kNN, linear probe, geometry, fairness.

- `knn_accuracy`, `knn_predict`: weighted kNN monitor (Wu et al. 2018).
- `linear_probe`: multinomial logistic regression on frozen features.
- `alignment`, `uniformity`, `similarity_distribution`: Wang & Isola 2020.
- `nuisance_probe`: how well the features predict a nuisance variable.
"""
from __future__ import annotations

from contrastive.evaluate.knn import knn_accuracy
from contrastive.evaluate.knn import knn_predict
from contrastive.evaluate.linear_probe import linear_probe
from contrastive.evaluate.linear_probe import LinearProbeResult
from contrastive.evaluate.metrics import alignment
from contrastive.evaluate.metrics import similarity_distribution
from contrastive.evaluate.metrics import SimilarityDistribution
from contrastive.evaluate.metrics import uniformity
from contrastive.evaluate.nuisance import nuisance_probe
from contrastive.evaluate.nuisance import NuisanceProbeResult
from contrastive.evaluate.nuisance import stratified_split

__all__ = [
    "alignment",
    "knn_accuracy",
    "knn_predict",
    "linear_probe",
    "LinearProbeResult",
    "nuisance_probe",
    "NuisanceProbeResult",
    "similarity_distribution",
    "SimilarityDistribution",
    "stratified_split",
    "uniformity",
]
