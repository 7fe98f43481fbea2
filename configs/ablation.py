"""The ablation grid: methods x datasets x seeds, run by launch/ablate.py.

  python -m launch.ablate --config=configs/ablation.py:default --workdir=/tmp/ablation
  python -m launch.ablate --config=configs/ablation.py:smoke --workdir=/tmp/smoke

`default` is the table of the README: every method on Fashion-MNIST (image),
FSDD (audio) and UCI HAPT (IMU), 3 seeds. `smoke` is the seconds-scale
version the tests run end to end. Any field can be overridden, e.g.
`--config.seeds="(0,)" --config.methods="('simclr','dcl')"`.

The rows:
- `random_init`: the encoder at initialisation, evaluated (0 steps): the
  floor any method must beat.
- `simclr`, `dcl`, `hcl`, `moco`, `moco_filtered`, `cclk` (hard-negative
  mode), `cclk_fair` (conditioned on the speaker / subject: FSDD and HAPT
  only), `decoupled_uniformity`, `mcl`, `clusterns`: the methods' own
  configs (configs/<name>.py) with the shared budget below.
- `supcon` and `supervised` (cross-entropy, contrastive/ablation/
  supervised.py): label-using ceilings.

Sizing of `default` (budget: the whole grid in 2 hours on a 2-core CPU).
Measured on this project's 2-core build machine (see
contrastive/ablation/README in the report): a run's cost is dominated by XLA
compilation (the train step, the initialisation and the evaluation programs:
~20-40 s of CPU per program set) and then by training steps. The sweep keeps
a persistent compilation cache in the workdir, so seeds 1 and 2 of a
(method, dataset) reuse seed 0's programs. With ~110 runs in 7,200 s, a run
can spend about one minute in all; the budget below gives each trained run
SIZING_NOTE.
"""
from __future__ import annotations

import os

import ml_collections

DATASETS = ("fashion_mnist", "fsdd", "uci_hapt")
NUISANCE_DATASETS = ("fsdd", "uci_hapt")
SEEDS = (0, 1, 2)
# Methods whose config file may be absent in older checkouts.
OPTIONAL_METHODS = ("mcl", "clusterns")
# The per-run budget of `default` (see the sizing note above).
BATCH = 128
NUM_STEPS = 60
WARMUP = 10
MAX_TRAIN = 5000     # examples embedded for the kNN and linear probes
MAX_TEST = 2000
# FSDD (300) and HAPT (3,399) test sets are evaluated whole: HAPT's are
# ordered by subject, and a prefix would leave the subject probe few classes.
DATASET_OVERRIDES = {"fsdd": {"eval": {"max_test_examples": None}},
                     "uci_hapt": {"eval": {"max_test_examples": None}}}
ORDER = ("random_init", "simclr", "dcl", "hcl", "moco", "moco_filtered",
         "cclk", "cclk_fair", "decoupled_uniformity", "mcl", "clusterns",
         "supcon", "supervised")


def _specs(queue_size: int) -> dict:
  """How each row is built from a method config; see grid.method_specs."""
  zero_steps = {"train": {"num_steps": 0, "num_epochs": 0}}
  return {
      "random_init": dict(config="simclr", overrides=zero_steps),
      "simclr": dict(config="simclr"),
      "dcl": dict(config="dcl"),
      "hcl": dict(config="hcl"),
      "moco": dict(config="moco"),
      # Its config keeps a quarter of the queue; follow the resized queue.
      "moco_filtered": dict(config="moco_filtered",
                            overrides={"loss": {"top_k": queue_size // 4}}),
      "cclk": dict(config="cclk"),
      "cclk_fair": dict(config="cclk", arg_suffix=",fair",
                        datasets=NUISANCE_DATASETS),
      "decoupled_uniformity": dict(config="decoupled_uniformity"),
      "mcl": dict(config="mcl"),
      "clusterns": dict(config="clusterns"),
      "supcon": dict(config="supcon"),
      "supervised": dict(config="simclr", kind="supervised"),
  }


def _available(methods, configs_dir: str) -> tuple[str, ...]:
  return tuple(m for m in methods if m not in OPTIONAL_METHODS
               or os.path.exists(os.path.join(configs_dir, f"{m}.py")))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The sweep named by `arg`: 'default' (the README's table) or 'smoke'."""
  name = arg or "default"
  if name not in ("default", "smoke"):
    raise ValueError(f"unknown sweep {name!r}; valid sweeps: default, smoke.")
  configs_dir = os.path.dirname(os.path.abspath(__file__))
  sweep = ml_collections.ConfigDict()
  sweep.name = name
  if name == "smoke":
    batch, queue = 16, 64
    sweep.size = "tiny"
    sweep.datasets = ("uci_hapt",)
    sweep.methods = ("random_init", "simclr", "supervised")
    sweep.seeds = (0, 1)
    sweep.histogram_examples = 64
    sweep.run_overrides = dict(
        train=dict(num_steps=3, log_every=1, progress=False),
        # The first 128 test windows are one subject's: the subject probe
        # needs several, so evaluate on every test window (3,399).
        eval=dict(max_test_examples=None))
    sweep.dataset_overrides = {}
  else:
    batch, queue = BATCH, 8 * BATCH
    sweep.size = "small"
    sweep.datasets = DATASETS
    sweep.methods = _available(ORDER, configs_dir)
    sweep.seeds = SEEDS
    sweep.histogram_examples = 512
    sweep.run_overrides = dict(
        train=dict(batch_size=batch, num_steps=NUM_STEPS, log_every=10,
                   checkpoint_every=10_000, progress=False),
        optimizer=dict(warmup_steps=WARMUP),
        moco=dict(queue_size=queue),
        eval=dict(max_train_examples=MAX_TRAIN, max_test_examples=MAX_TEST))
    sweep.dataset_overrides = DATASET_OVERRIDES
  del batch
  sweep.method_specs = _specs(queue)
  return sweep
