"""Config mistakes fail at start-up with the valid choices named."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from configs import cclk
from configs import clusterns
from configs import common
from configs import dcl
from configs import decoupled_uniformity
from configs import hcl
from configs import mcl
from configs import moco
from configs import moco_filtered
from configs import simans
from configs import simclr
from configs import supcon
from contrastive import losses
from contrastive.train import experiment
from contrastive.train.objectives import LOSS_NAMES, Projections
from contrastive.train.objectives import build_objective


def test_unknown_loss_lists_valid_names():
  with pytest.raises(ValueError, match="Unknown loss 'nce'") as err:
    build_objective({"name": "nce", "temperature": 0.1}, "simclr")
  for name in LOSS_NAMES:
    assert name in str(err.value)


def test_unknown_method():
  with pytest.raises(ValueError, match="Unknown method 'byol'.*simclr, moco"):
    build_objective({"name": "infonce", "temperature": 0.1}, "byol")


def test_loss_not_available_for_method():
  with pytest.raises(ValueError, match="cannot be used with method 'simclr'"):
    build_objective({"name": "moco_filtered", "temperature": 0.1}, "simclr")


def test_unknown_hyperparameter_lists_accepted_ones():
  with pytest.raises(ValueError, match="tau_plus.*temperature"):
    build_objective({"name": "infonce", "temperature": 0.1, "tau_plus": 0.1},
                    "simclr")


def test_every_method_config_builds_its_objective():
  for module in (simclr, moco, dcl, hcl, supcon, moco_filtered,
                 decoupled_uniformity, simans, mcl, clusterns):
    config = module.get_config("uci_hapt,tiny")
    build_objective(config.loss, config.method)
  config = cclk.get_config("fsdd,tiny,fair")
  assert config.loss.condition == "speaker"
  build_objective(config.loss, config.method)


@pytest.mark.parametrize("size", common.SIZES)
def test_cluster_balanced_configs_build_at_every_size(size):
  for module in (mcl, clusterns):
    config = module.get_config(f"uci_hapt,{size},balanced")
    assert config.balanced_batches.clusters_per_batch >= 1


def test_fair_mode_needs_a_nuisance_variable():
  with pytest.raises(ValueError, match="nuisance variable"):
    cclk.get_config("fashion_mnist,tiny,fair")


def test_bad_config_argument():
  with pytest.raises(ValueError, match="Unknown dataset 'mnist'.*fashion_mnist"):
    common.parse_arg("mnist")
  with pytest.raises(ValueError, match="SIZE in full, cpu, small, tiny"):
    common.parse_arg("fsdd,huge")


def test_queue_must_be_a_multiple_of_the_global_batch():
  config = moco.get_config("uci_hapt,tiny")
  config.moco.queue_size = 40   # batch 16
  with pytest.raises(ValueError, match="multiple of the global batch size 16"):
    experiment.build_experiment(config)


def test_unknown_model_and_dataset_names():
  config = simclr.get_config("uci_hapt,tiny")
  config.model.name = "resnet7"
  with pytest.raises(ValueError, match="resnet7.*resnet18"):
    experiment.build_experiment(config)
  config = simclr.get_config("uci_hapt,tiny")
  config.data.name = "har"
  with pytest.raises(ValueError, match="har.*uci_hapt"):
    experiment.build_experiment(config)


def test_batch_must_divide_over_the_mesh():
  config = simclr.get_config("uci_hapt,tiny")
  config.train.batch_size = 12   # 8 devices
  with pytest.raises(ValueError, match="divisible by the mesh's data axis"):
    experiment.build_experiment(config)


def test_evaluation_subsets_span_the_split():
  """Readers store examples grouped (HAPT by subject): a subset must not be
  a prefix, or a nuisance probe would see one subject."""
  from contrastive.train.embedding import subset_indices
  idx = subset_indices(1000, 10)
  assert len(idx) == 10 and idx[0] == 0 and idx[-1] == 999
  assert len(set(idx.tolist())) == 10
  assert list(subset_indices(5, None)) == list(range(5))
  assert list(subset_indices(5, 9)) == list(range(5))


@pytest.mark.parametrize("dataset", sorted(common.DATASETS))
def test_configs_list_every_model_field(dataset):
  """Each field the model accepts is in the config, so the command line can
  override it (`--config.model.bn_sums=reduce`); the presets' own values
  win over the defaults."""
  from contrastive import models  # pylint: disable=import-outside-toplevel
  config = simclr.get_config(f"{dataset},small")
  defaults = models.default_config(config.model.name)
  assert set(config.model.keys()) == set(defaults.keys())
  assert config.model.projection_dims == (256, 64)


def test_a_sampling_loss_needs_its_key():
  """SimANS draws its negatives: the objective passes `rng` to the loss, and
  the same key gives the same loss."""
  config = simans.get_config("uci_hapt,tiny")
  objective = build_objective(config.loss, config.method)
  assert objective.uses_rng
  rng = np.random.default_rng(0)
  proj = Projections(online=rng.normal(size=(2, 16, 8)).astype(np.float32),
                     momentum=rng.normal(size=(2, 16, 8)).astype(np.float32))
  queue = rng.normal(size=(64, 8)).astype(np.float32)
  with pytest.raises(ValueError, match="draws its negatives; pass rng="):
    objective(proj, {}, negatives=queue)
  key = jax.random.key(0)
  first, aux = objective(proj, {}, negatives=queue, rng=key)
  again, _ = objective(proj, {}, negatives=queue, rng=key)
  assert first == again and aux["num_negatives"] == config.loss.num_samples
  # symmetric_queue (the config's): the mean of q1 -> k2 and q2 -> k1, each
  # direction with draws of its own.
  assert config.loss.symmetric_queue
  hparams = {k: v for k, v in config.loss.items()
             if k not in ("name", "symmetric_queue")}
  key1, key2 = jax.random.split(key)
  forward, _ = losses.simans_infonce(
      proj.online[0], proj.momentum[1], key1, negatives=queue, **hparams)
  backward, _ = losses.simans_infonce(
      proj.online[1], proj.momentum[0], key2, negatives=queue, **hparams)
  np.testing.assert_allclose(first, (forward + backward) / 2, rtol=1e-6)
  assert abs(forward - backward) > 1e-3  # the directions differ
