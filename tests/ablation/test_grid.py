"""The sweep grid and the run configs built from the method configs."""
from __future__ import annotations

import pytest

from configs import ablation as ablation_config
from configs import common
from contrastive.ablation import grid
from contrastive.train import objectives


def test_default_grid_has_every_method_dataset_and_seed():
  sweep = ablation_config.get_config("default")
  runs = grid.expand(sweep)
  cells = {(r.dataset, r.method) for r in runs}
  assert {r.dataset for r in runs} == {"fashion_mnist", "fsdd", "uci_hapt"}
  for method in ("random_init", "simclr", "dcl", "hcl", "moco",
                 "moco_filtered", "cclk", "decoupled_uniformity", "supcon",
                 "supervised"):
    assert {(d, method) for d in ablation_config.DATASETS} <= cells
  # CCL-K's fair mode needs a nuisance variable: not on Fashion-MNIST.
  assert ("fashion_mnist", "cclk_fair") not in cells
  assert ("fsdd", "cclk_fair") in cells and ("uci_hapt", "cclk_fair") in cells
  per_cell = {}
  for r in runs:
    per_cell.setdefault((r.dataset, r.method), []).append(r.seed)
  # Input representations have no randomness: one seed; the rest five.
  inputs = {(d, f"input_{n}") for d, names in ablation_config.INPUTS.items()
            for n in names}
  assert {c for c, seeds in per_cell.items() if seeds == [0]} == inputs
  assert all(seeds == [0, 1, 2, 3, 4] for c, seeds in per_cell.items()
             if c not in inputs)
  assert ("fashion_mnist", "simans") in cells
  assert ("fsdd", "input_pixels") not in cells
  assert len({r.run_id for r in runs}) == len(runs)
  assert runs[0].run_id == "fashion_mnist__random_init__seed0"
  assert runs[5].run_id == "fashion_mnist__input_pixels__seed0"
  quick = grid.expand(ablation_config.get_config("quick"))
  assert {r.method for r in quick} == {
      "random_init", *(c[1] for c in inputs), "simclr", "dcl", "hcl",
      "supervised"}
  assert {r.seed for r in quick} == {0, 1, 2}


def test_every_default_run_config_is_valid():
  """Each run's loss and method pass the trainer's own start-up checks, and
  the shared budget reached every run."""
  sweep = ablation_config.get_config("default")
  for run in grid.expand(sweep):
    config = grid.run_config(run, sweep)
    objectives.build_objective(config.loss, config.method)
    if run.kind == "input":
      assert config.input == run.method[len("input_"):]
    assert config.seed == run.seed and config.dataset == run.dataset
    assert config.train.batch_size == ablation_config.BATCH
    budget = ablation_config.BUDGET[run.dataset]
    expected = budget["steps"]
    if run.method == "random_init" or run.kind == "input":
      expected = 0 if run.method == "random_init" else expected
    assert config.train.num_steps == expected
    small = common.base_config(f"{run.dataset},small").model
    assert (config.model.name, config.model.width) == (small.name,
                                                       small.width)
    assert config.moco.queue_size % config.train.batch_size == 0
    if run.method == "simans":
      assert config.loss.top_n == config.moco.queue_size // 4
    if run.method == "moco_filtered":
      assert config.loss.top_k == config.moco.queue_size // 4
    if run.method == "clusterns":
      assert config.loss.num_clusters <= config.train.batch_size
    if run.method == "cclk_fair":
      assert config.loss.mode == "fair"
      assert config.loss.condition == common.DATASETS[run.dataset]["nuisance"]
    if run.method == "mcl":  # its stages share the budget's steps
      assert (config.mcl.num_stages * config.mcl.steps_per_stage
              == budget["steps"])
    # The standard protocol: every example of both splits.
    assert config.eval.max_train_examples is None
    assert config.eval.max_test_examples is None


def test_overrides_apply_in_order_run_dataset_method():
  sweep = ablation_config.get_config("smoke")
  sweep.run_overrides = {"train": {"num_steps": 7},
                         "loss": {"temperature": 0.3}}
  sweep.dataset_overrides = {"uci_hapt": {"train": {"num_steps": 9}}}
  sweep.method_specs.simclr = {"overrides": {"loss": {"temperature": 0.2}}}
  simclr = grid.run_config(grid.Run("simclr", "uci_hapt", 5), sweep)
  assert simclr.train.num_steps == 9 and simclr.loss.temperature == 0.2
  assert simclr.seed == 5
  floor = grid.run_config(grid.Run("random_init", "uci_hapt", 0), sweep)
  assert floor.train.num_steps == 0 and floor.loss.temperature == 0.3
  # A spec's own per-dataset overrides come last.
  sweep.method_specs.simclr = {
      "overrides": {"loss": {"temperature": 0.2}},
      "dataset_overrides": {"uci_hapt": {"loss": {"temperature": 0.1}},
                            "fsdd": {"loss": {"temperature": 0.9}}}}
  simclr = grid.run_config(grid.Run("simclr", "uci_hapt", 0), sweep)
  assert simclr.loss.temperature == 0.1


def test_unknown_override_field_names_the_valid_fields():
  sweep = ablation_config.get_config("smoke")
  sweep.run_overrides = {"train": {"num_stpes": 3}}
  with pytest.raises(ValueError, match=r"config\.train\.num_stpes.*num_steps"):
    grid.run_config(grid.Run("simclr", "uci_hapt", 0), sweep)


def test_bad_sweeps_raise():
  sweep = ablation_config.get_config("smoke")
  sweep.methods = ("simclr", "nope")
  with pytest.raises(ValueError, match="'nope'.*specified methods"):
    grid.expand(sweep)
  sweep = ablation_config.get_config("smoke")
  sweep.method_specs.simclr = {"kind": "magic"}
  with pytest.raises(ValueError, match="kind 'magic'.*contrastive, supervised"):
    grid.expand(sweep)
  sweep = ablation_config.get_config("smoke")
  sweep.seeds = ()
  with pytest.raises(ValueError, match="seeds is empty"):
    grid.expand(sweep)
  with pytest.raises(ValueError, match="valid sweeps: default, quick, cpu, smoke"):
    ablation_config.get_config("huge")


def test_missing_config_file_lists_the_configs():
  with pytest.raises(ValueError, match="no config file.*simclr"):
    grid.load_config_module("does_not_exist")
