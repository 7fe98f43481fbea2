"""train/methods.py: the one table of methods and cluster options."""
import pytest

from contrastive.train import cluster_hooks
from contrastive.train import methods
from contrastive.train import objectives


def test_unknown_method_names_the_valid_ones():
  with pytest.raises(ValueError, match="Unknown method 'byol'.*simclr, moco"):
    methods.get_method("byol")
  assert methods.get_method("moco").queue
  assert methods.get_method("moco").momentum_encoder
  assert not methods.get_method("simclr").queue


def test_every_source_has_losses_and_every_loss_a_source():
  for method in methods.METHODS.values():
    assert method.negatives in methods.NEGATIVE_SOURCES
    assert objectives.losses_for(method.name), method
  for name, spec in objectives._specs().items():
    assert spec.sources and set(spec.sources) <= set(
        methods.NEGATIVE_SOURCES), name


def test_negative_mask_losses_come_from_the_loss_table():
  masked = objectives.NEGATIVE_MASK_LOSSES
  assert {"infonce", "dcl", "hcl", "clusterns"} <= set(masked)
  assert "supcon" not in masked
  objectives.check_negative_mask("infonce", "simclr", "MCL")
  with pytest.raises(ValueError, match="MCL .*negative_mask.*infonce") as err:
    objectives.check_negative_mask("supcon", "simclr", "MCL")
  # Only losses the method can use are offered.
  assert "moco_filtered" not in str(err.value)


def test_every_cluster_option_names_a_hook_class():
  for option in methods.CLUSTER_OPTIONS:
    assert isinstance(getattr(cluster_hooks, option.hook), type), option
