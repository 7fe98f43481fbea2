"""Datasets and batch iteration.

Readers of the publishers' file layouts (Fashion-MNIST IDX files, FSDD WAV
files, UCI HAPT raw IMU text files), TFDS image datasets through
`tfds.data_source` (no TensorFlow), folders of class folders of images
(`image_folder`, with training crops of the whole image drawn on the host:
`host_crops`), a registry `build_dataset(config, split)`
and a deterministic, process-sharded, resumable `BatchIterator`. Where the
offline datasets are found, and fetching them (`python -m
contrastive.data.fetch NAME`): `sources`.

Example:
  from contrastive import data
  train = data.build_dataset({"name": "fsdd"}, "train")
  it = data.BatchIterator(train, batch_size=64, seed=0)
  batch = next(it)  # {'x': [64, 8000], 'label': [64], 'index': [64], ...}
"""
from contrastive.data.base import ArrayDataset
from contrastive.data.base import DataNotFoundError
from contrastive.data.base import DataUnavailableError
from contrastive.data.base import Dataset
from contrastive.data.base import DatasetInfo
from contrastive.data.base import FetchError
from contrastive.data.fashion_mnist import load_fashion_mnist
from contrastive.data import host_crops
from contrastive.data.fsdd import load_fsdd
from contrastive.data.image_folder import ImageFolderDataset
from contrastive.data.iterator import BatchIterator
from contrastive.data.iterator import IndexSampler
from contrastive.data.iterator import SequentialSampler
from contrastive.data.iterator import ShuffleSampler
from contrastive.data.iterator import load_batch
from contrastive.data.registry import DATASETS
from contrastive.data.registry import build_dataset
from contrastive.data.registry import config_fields
from contrastive.data.registry import default_config
from contrastive.data.tfds_source import TfdsDataset
from contrastive.data.uci_hapt import load_uci_hapt

__all__ = [
    "ArrayDataset",
    "BatchIterator",
    "DATASETS",
    "DataNotFoundError",
    "DataUnavailableError",
    "Dataset",
    "DatasetInfo",
    "FetchError",
    "ImageFolderDataset",
    "IndexSampler",
    "SequentialSampler",
    "ShuffleSampler",
    "TfdsDataset",
    "build_dataset",
    "config_fields",
    "default_config",
    "host_crops",
    "load_batch",
    "load_fashion_mnist",
    "load_fsdd",
    "load_uci_hapt",
]
