"""The ablation grids: methods x datasets x seeds, run by launch/ablate.py.

  python -m launch.ablate --config=configs/ablation.py:default --workdir=/tmp/ablation
  python -m launch.ablate --config=configs/ablation.py:quick --workdir=/tmp/quick
  python -m launch.ablate --config=configs/ablation.py:cpu --workdir=/tmp/cpu_sweep
  python -m launch.ablate --config=configs/ablation.py:smoke --workdir=/tmp/smoke

Any field can be overridden, e.g. `--config.seeds="(0,1,2)"
--config.methods="('simclr','dcl')" --config.datasets="('uci_hapt',)"`; the
sweep resumes where it stopped (finished runs are skipped).

Grids:
- `default`: the README's table. Every row below on Fashion-MNIST (image),
  FSDD (audio) and UCI HAPT (IMU), seeds 0-4. Seed s of every method
  starts from the same initialisation and sees the same data order, so
  methods are compared paired by seed: each row's difference to SimCLR
  with a 95 % interval over the seeds, and the papers' claims
  (`HYPOTHESES`) marked confirmed, refuted or inconclusive
  (contrastive/ablation/statistics.py).
- `quick`: random init, the input rows, SimCLR, DCL, HCL and supervised,
  seeds 0-2: the same runs as those rows of `default` (a `quick` workdir's
  runs are `default`'s).
- `cpu`: SimCLR and the supervised ceiling at each dataset's `cpu` recipe
  (configs/common.py), beside random init and the input rows, seeds 0-2,
  SimCLR's learning curve on the full splits at 5 points.
- `smoke`: seconds; the tests run it end to end.

Rows:
- `random_init`: the encoder at initialisation, evaluated (0 steps).
- `input_*`: the dataset's input features scored by the same kNN and probe
  (contrastive/evaluate/input_features.py): Fashion-MNIST pixels; FSDD
  log-mel frames and MFCC statistics; HAPT standardised windows and
  per-channel summary statistics. Deterministic: one seed.
- `simclr`, `dcl`, `hcl`, `moco`, `moco_filtered`, `cclk` (hard-negative
  mode), `cclk_fair` (conditioned on the speaker / subject: FSDD and HAPT
  only), `decoupled_uniformity`, `mcl`, `clusterns`, `simans`: the methods'
  own configs (configs/<name>.py) at the budget below. The in-batch InfoNCE
  family (SimCLR, DCL, HCL, MCL, ClusterNS) shares the recipe's temperature.
- `supcon` and `supervised` (cross-entropy, contrastive/ablation/
  supervised.py): label-using ceilings at the same budget.

Budget: each dataset's `small` recipe (encoder, augmentations, temperature)
at batch 64 for `BUDGET` steps (Fashion-MNIST 250, FSDD 150, HAPT 250; a
tenth of them warm-up), every run evaluated on the full splits. The seeds
of a (dataset, method) train as one population (members in sequence on a
CPU, sharing compiled programs, data and evaluation; see
benchmarks/README.md, "Populations").

Cost, measured on the project's 2-core CPU (2026-12-03, the runs'
`status.json`; the learning curves or the test suite shared the machine
throughout, so each run had about one core and its CPU time was about its
wall time). Wall seconds a member:

  UCI HAPT       random init 6, inputs 5-6, SimCLR 55, DCL 55, HCL 54,
                 MoCo 66, MoCo filtered 64, CCL-K 67, CCL-K fair 67,
                 decoupled uniformity 54, MCL 63, ClusterNS 54, SimANS 66,
                 SupCon 53, supervised 34: the dataset's 67 runs, 63 min.
  FSDD           random init 7, inputs 7-16, SimCLR 60, DCL 62, HCL 64,
                 MoCo 78, MoCo filtered 89 (the other rows: see the
                 sweep's summary; ~75 min for the dataset, extrapolated).
  Fashion-MNIST  random init 27, pixels 24 (the trained rows not yet
                 measured; ~65 s a member expected from the README job's
                 step time and its 20-25 s evaluation on the full splits).

So `default` comes to about 3.5 hours on this machine shared with one
other job, to be confirmed by a complete run, and `quick` to about 35
minutes (the same runs' seeds 0-2), over its 30-minute target when shared;
running alone, a run has both cores. The steps dominate (HAPT SimCLR: 49 of
55 s), so the cost is the budget's steps times the recipe's step time.
"""
from __future__ import annotations

import os

import ml_collections

from configs import common

DATASETS = ("fashion_mnist", "fsdd", "uci_hapt")
NUISANCE_DATASETS = ("fsdd", "uci_hapt")
SEEDS = (0, 1, 2, 3, 4)
QUICK_SEEDS = (0, 1, 2)
# Methods whose config file may be absent in older checkouts.
OPTIONAL_METHODS = ("mcl", "clusterns", "simans")
# Input representations scored as rows (contrastive/evaluate/input_features.py).
INPUTS = {"fashion_mnist": ("pixels",), "fsdd": ("logmel", "mfcc_stats"),
          "uci_hapt": ("windows", "summary_stats")}
# The per-run budget of `default` and `quick` (see the sizing note above):
# the `small` recipe of each dataset (configs/common.py), one batch size
# (MoCo's queue and ClusterNS's centroids depend on it) and a number of steps.
BATCH = 64
QUEUE = 8 * BATCH
BUDGET = {
    "fashion_mnist": dict(steps=250),
    "fsdd": dict(steps=150),
    "uci_hapt": dict(steps=250),
}
MCL_STAGES = 2


def _dataset_overrides() -> dict:
  out = {}
  for dataset, budget in BUDGET.items():
    out[dataset] = dict(
        train=dict(num_steps=budget["steps"]),
        optimizer=dict(warmup_steps=max(1, budget["steps"] // 10)))
  return out


INPUT_ROWS = tuple(f"input_{name}" for names in INPUTS.values()
                   for name in names)
ORDER = ("random_init", *INPUT_ROWS, "simclr", "dcl", "hcl", "moco",
         "moco_filtered", "cclk", "cclk_fair", "decoupled_uniformity", "mcl",
         "clusterns", "simans", "supcon", "supervised")
QUICK = ("random_init", *INPUT_ROWS, "simclr", "dcl", "hcl", "supervised")

# The papers' claims, each tested per dataset as a paired difference over
# seeds (contrastive/ablation/statistics.py): confirmed when its 95 %
# interval lies on the claimed side of zero.
HYPOTHESES = (
    dict(name="DCL > SimCLR", method="dcl", baseline="simclr",
         metric="linear_probe_accuracy", direction="greater",
         source="Chuang et al. 2020: +4.1 pp on STL-10 (tau_plus 0.1)"),
    dict(name="HCL > DCL", method="hcl", baseline="dcl",
         metric="linear_probe_accuracy", direction="greater",
         source="Robinson et al. 2021: +3.2 pp on STL-10 (beta 1)"),
    dict(name="MoCo with filtering > MoCo", method="moco_filtered",
         baseline="moco", metric="linear_probe_accuracy",
         direction="greater",
         source="dual-view MoCo with hard-negative filtering"),
    dict(name="CCL-K fair lowers the nuisance probe", method="cclk_fair",
         baseline="simclr", metric="nuisance_probe_accuracy",
         direction="less", datasets=NUISANCE_DATASETS,
         cost_metric="linear_probe_accuracy",
         source="Tsai et al. 2022 (conditioning on the sensitive attribute)"),
    dict(name="MCL (stages concatenated) > one stage, equal steps",
         method="mcl", baseline="simclr", metric="linear_probe_accuracy",
         direction="greater", source="MCL, 'Learning the Unlearned'"),
    dict(name="decoupled uniformity > InfoNCE at small batch",
         method="decoupled_uniformity", baseline="simclr",
         metric="linear_probe_accuracy", direction="greater",
         source="Dufumier et al. 2023"),
)


def _specs(batch: int, queue_size: int, steps: dict) -> dict:
  """How each row is built from a method config; see grid.method_specs."""
  zero_steps = {"train": {"num_steps": 0, "num_epochs": 0}}
  specs = {
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
      # MCL trains one encoder per stage: split the budget's steps over the
      # stages, so that it trains as many steps in all as every other row.
      "mcl": dict(config="mcl", dataset_overrides={
          dataset: {"mcl": {"num_stages": MCL_STAGES,
                            "steps_per_stage": n // MCL_STAGES}}
          for dataset, n in steps.items()}),
      # ClusterNS seeds its centroids from one batch: K <= the batch size.
      "clusterns": dict(config="clusterns",
                        overrides={"loss": {"num_clusters": min(128, batch)}}),
      # SimANS draws from the quarter of the queue nearest the positive.
      "simans": dict(config="simans", overrides={"loss": {
          "top_n": queue_size // 4, "num_samples": queue_size // 16}}),
      "supcon": dict(config="supcon"),
      "supervised": dict(config="simclr", kind="supervised"),
  }
  for dataset, names in INPUTS.items():
    for name in names:
      # No randomness: one seed.
      specs[f"input_{name}"] = dict(config="simclr", kind="input",
                                    input=name, datasets=(dataset,),
                                    seeds=(0,))
  return specs


def _available(methods, configs_dir: str) -> tuple[str, ...]:
  return tuple(m for m in methods if m not in OPTIONAL_METHODS
               or os.path.exists(os.path.join(configs_dir, f"{m}.py")))


SWEEPS = ("default", "quick", "cpu", "smoke")
# Evaluations on the full splits along each SimCLR run of the `cpu` sweep
# (its learning curves, benchmarks/learning_curves.py).
CPU_CURVE_POINTS = 5


def _cpu_sweep(sweep: ml_collections.ConfigDict) -> None:
  """SimCLR and the supervised ceiling at each dataset's `cpu` recipe,
  beside random init and the input representations, 3 seeds."""
  sweep.size = "cpu"
  sweep.datasets = DATASETS
  sweep.methods = ("random_init", *INPUT_ROWS, "simclr", "supervised")
  sweep.seeds = QUICK_SEEDS
  sweep.histogram_examples = 512
  sweep.run_overrides = dict(train=dict(progress=False))
  sweep.dataset_overrides = {}
  sweep.hypotheses = []
  specs = _specs(0, 0, {})
  curves = {}
  for dataset in DATASETS:
    steps = common.CPU_RECIPES[dataset]["cpu"]["num_steps"]
    curves[dataset] = dict(
        train=dict(eval_every=steps // CPU_CURVE_POINTS),
        eval=dict(monitor_probe=True, monitor_train_examples=None,
                  monitor_test_examples=None))
  specs["simclr"] = dict(config="simclr", dataset_overrides=curves)
  # The cross-entropy ceiling converges in fewer steps: a third of them.
  specs["supervised"] = dict(config="simclr", kind="supervised",
                             dataset_overrides={
                                 dataset: dict(train=dict(
                                     num_steps=common.CPU_RECIPES[dataset][
                                         "cpu"]["num_steps"] // 3))
                                 for dataset in DATASETS})
  sweep.method_specs = {m: specs[m] for m in sweep.methods}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The sweep named by `arg`: 'default' (the README's table), 'quick'
  (its InfoNCE family, 3 seeds), 'cpu' (SimCLR and supervised at the `cpu`
  recipes, 3 seeds) or 'smoke' (the tests')."""
  name = arg or "default"
  if name not in SWEEPS:
    raise ValueError(f"unknown sweep {name!r}; valid sweeps:"
                     f" {', '.join(SWEEPS)}.")
  configs_dir = os.path.dirname(os.path.abspath(__file__))
  sweep = ml_collections.ConfigDict()
  sweep.name = name
  sweep.hypotheses = [dict(h) for h in HYPOTHESES]
  if name == "cpu":
    _cpu_sweep(sweep)
    return sweep
  if name == "smoke":
    batch, queue = 16, 64  # the tiny size's
    sweep.size = "tiny"
    sweep.datasets = ("uci_hapt",)
    sweep.methods = ("random_init", "input_summary_stats", "simclr",
                     "supervised")
    sweep.seeds = (0, 1)
    sweep.histogram_examples = 64
    sweep.run_overrides = dict(
        train=dict(num_steps=3, log_every=1, progress=False),
        # Every test window (3,399; cheap with the tiny encoder), so that
        # the subject probe sees all nine test subjects in numbers.
        eval=dict(max_test_examples=None))
    sweep.dataset_overrides = {}
    steps = {"uci_hapt": 3}
  else:
    batch, queue = BATCH, QUEUE
    sweep.size = "small"
    sweep.datasets = DATASETS
    sweep.methods = _available(ORDER if name == "default" else QUICK,
                               configs_dir)
    sweep.seeds = SEEDS if name == "default" else QUICK_SEEDS
    sweep.histogram_examples = 512
    sweep.run_overrides = dict(
        train=dict(batch_size=BATCH, log_every=5, checkpoint_every=10_000,
                   progress=False),
        moco=dict(queue_size=queue),
        # The baselines are rows of their own.
        eval=dict(baselines=()))
    sweep.dataset_overrides = _dataset_overrides()
    steps = {d: b["steps"] for d, b in BUDGET.items()}
  sweep.method_specs = _specs(batch, queue, steps)
  return sweep
