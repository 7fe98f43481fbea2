"""The image recipes as a run builds them: host crops with the recipe's law."""
from __future__ import annotations

import pytest

from benchmarks import make_synthetic_imagenet as synthetic
from configs import dcl
from configs import moco
from configs import simclr
from contrastive.data import prefetch
from contrastive.train import experiment


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  root = tmp_path_factory.mktemp("in100")
  synthetic.write_folder(root, train=20, val=8, classes=4,
                         size_fn=lambda rng: (int(rng.integers(40, 80)),
                                              int(rng.integers(40, 80))))
  return root


def _config(module, arg, folder, **train):
  config = module.get_config(arg)
  config.data.data_dir = str(folder)
  config.data.cache_dir = str(folder / "cache")
  config.data.image_size, config.data.eval_resize = 24, 28
  config.augment.image_size = 24
  config.train.update(batch_size=8, **train)
  config.moco.queue_size = 32
  return config


@pytest.mark.parametrize("module,scale", [(moco, (0.2, 1.0)),
                                          (simclr, (0.08, 1.0))])
def test_the_iterator_gives_host_crops_with_the_recipes_law(
    folder, module, scale):
  exp = experiment.build_experiment(
      _config(module, "imagenet100,tiny", folder))
  assert exp.train_data.crop.scale == scale
  assert exp.train_data.crop.size == (24, 24)
  batch = next(exp.train_iterator())
  assert batch["x"].shape == (8, 2, 24, 24, 3)
  # Evaluation reads whole, centre-cropped images.
  assert exp.test_data.get_batch([0])["x"].shape == (1, 24, 24, 3)


def test_data_workers_wrap_the_iterator(folder):
  exp = experiment.build_experiment(
      _config(moco, "imagenet100,tiny", folder, data_workers=2))
  it = exp.train_iterator()
  assert isinstance(it, prefetch.PrefetchIterator)
  it.close()


def test_paper_recipes_at_full_size():
  config = simclr.get_config("imagenet2012")
  assert (config.augment.name, config.augment.crop_on) == ("simclr", "host")
  assert config.augment.jitter_strength == 1.0
  assert config.loss.temperature == 0.1 and config.train.batch_size == 4096
  config = moco.get_config("imagenet2012")
  assert config.augment.name == "mocov2" and config.moco.queue_size == 65536
  assert config.optimizer.name == "sgd" and config.train.num_epochs == 200
  config = dcl.get_config("stl10")
  assert config.augment.image_size == 32 and config.data.image_size is None
  assert (config.loss.temperature, config.train.num_epochs) == (0.5, 400)
