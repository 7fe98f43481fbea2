"""What every method's config shares: datasets, sizes, optimizer, mesh.

A method's file (configs/simclr.py, configs/moco.py, ...) calls
`base_config(arg)` and sets `method` and `loss`. `arg` names the dataset and,
optionally, a size, separated by a comma:

  configs/moco.py:fashion_mnist          # the full recipe (the papers')
  configs/moco.py:fashion_mnist,cpu      # at most 45 minutes on a 2-core CPU
  configs/moco.py:fashion_mnist,small    # at most 10 minutes (README job)
  configs/moco.py:uci_hapt,tiny          # seconds: for tests and smoke runs

Any field can then be overridden on the command line, e.g.
`--config.train.batch_size=512 --config.loss.temperature=0.1`.
"""
from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from contrastive import data as data_lib
from contrastive import models

SIZES = ("full", "cpu", "small", "tiny")

# Per dataset: its reader, its augmentation recipe and its default encoder.
# Why these recipes: see contrastive/augment/presets.py.
DATASETS = {
    "fashion_mnist": dict(
        data=dict(name="fashion_mnist"),
        augment=dict(name="simclr", image_size=28, crop_scale=(0.2, 1.0)),
        model=dict(name="resnet18", stem="cifar", width=64),
        nuisance=None,
    ),
    "cifar10": dict(
        data=dict(name="cifar10"),
        augment=dict(name="simclr", image_size=32),
        model=dict(name="resnet18", stem="cifar", width=64),
        nuisance=None,
    ),
    "cifar100": dict(
        data=dict(name="cifar100"),
        augment=dict(name="simclr", image_size=32),
        model=dict(name="resnet18", stem="cifar", width=64),
        nuisance=None,
    ),
    "stl10": dict(
        data=dict(name="stl10", image_size=96),
        augment=dict(name="mocov2", image_size=96),
        model=dict(name="resnet50", stem="imagenet", width=64),
        nuisance=None,
    ),
    "imagenet2012": dict(
        data=dict(name="imagenet2012", image_size=224),
        augment=dict(name="mocov2", image_size=224),
        model=dict(name="resnet50", stem="imagenet", width=64),
        nuisance=None,
    ),
    "fsdd": dict(
        data=dict(name="fsdd"),
        augment=dict(name="audio_default"),
        model=dict(name="audio_cnn", width=32, depth=4),
        nuisance="speaker",
    ),
    "uci_hapt": dict(
        data=dict(name="uci_hapt"),
        augment=dict(name="sensor_default"),
        model=dict(name="sensor_resnet1d", width=64, depth=3),
        nuisance="subject",
    ),
}

# The CPU sizes' recipes, per dataset, chosen by measurement: accuracy on
# the full test split against training CPU minutes on the project's 2-core
# machine (benchmarks/learning_curves.py, docs/curves/<dataset>.png).
# `small`: the README job (at most 10 minutes with its evaluation); `cpu`:
# at most 45 minutes a run. Each is AdamW with a cosine schedule; the fields
# are the encoder, augmentation overrides, batch size, steps, learning rate,
# warmup, and the in-batch InfoNCE temperature (`in_batch_temperature`).
CPU_RECIPES = {
    "fashion_mnist": {
        "small": dict(model=dict(name="resnet10", stem="cifar_pool",
                                 width=16), augment={},
                      batch_size=64, num_steps=4000, learning_rate=1e-3,
                      warmup_steps=200, temperature=0.05),
        "cpu": dict(model=dict(name="resnet10", stem="cifar_pool",
                               width=24), augment={},
                    batch_size=64, num_steps=5000, learning_rate=1e-3,
                    warmup_steps=250, temperature=0.05),
    },
    "fsdd": {
        "small": dict(model=dict(width=16, depth=4, frame_step=160,
                                 num_mel_bins=40),
                      augment=dict(time_max_width=5, freq_max_width=5),
                      batch_size=128, num_steps=500, learning_rate=1e-3,
                      warmup_steps=50, temperature=0.5),
        "cpu": dict(model=dict(width=16, depth=4, frame_step=160,
                               num_mel_bins=40),
                    augment=dict(time_max_width=5, freq_max_width=5),
                    batch_size=128, num_steps=1000, learning_rate=1e-3,
                    warmup_steps=100, temperature=0.5),
    },
    "uci_hapt": {
        "small": dict(model=dict(width=32, depth=3), augment={},
                      batch_size=128, num_steps=600, learning_rate=1e-3,
                      warmup_steps=50, temperature=0.5),
        "cpu": dict(model=dict(width=64, depth=3), augment={},
                    batch_size=128, num_steps=1000, learning_rate=1e-3,
                    warmup_steps=100, temperature=0.5),
    },
}
# The other datasets' CPU sizes: the same family, narrower.
_SMALL_MODEL = {
    "resnet10": dict(width=16), "resnet18": dict(width=16),
    "resnet50": dict(width=16),
}
_TINY_MODEL = {
    "resnet10": dict(width=4), "resnet18": dict(width=4),
    "resnet50": dict(width=4),
    "audio_cnn": dict(width=4, depth=2), "sensor_resnet1d": dict(width=8, depth=2),
}


def in_batch_temperature(config, default: float = 0.5) -> float:
  """The temperature of the in-batch InfoNCE family (SimCLR, DCL, HCL, MCL
  and ClusterNS on SimCLR): the recipe's at the CPU sizes, so that these
  methods differ only in what their papers add (tau_plus, beta, stages,
  centroids); `default` (their papers' 0.5) at the other sizes."""
  if config.size in ("small", "cpu") and config.dataset in CPU_RECIPES:
    return CPU_RECIPES[config.dataset][config.size]["temperature"]
  return default


def _cpu_recipe(dataset: str, size: str) -> dict:
  """The recipe of a CPU size (`small` or `cpu`) for `dataset`."""
  recipe = CPU_RECIPES.get(dataset, {}).get(size)
  if recipe is None:   # a TFDS image dataset: the small ResNet, 300 steps
    recipe = dict(model=dict(_SMALL_MODEL.get(
        DATASETS[dataset]["model"]["name"], {})), augment={},
                  batch_size=128, num_steps=300 if size == "small" else 3000,
                  learning_rate=1e-3, warmup_steps=50, temperature=0.5)
  return recipe


def parse_arg(arg: str | None) -> tuple[str, str]:
  """'fsdd,small' -> ('fsdd', 'small'); the default is fashion_mnist, full."""
  parts = [p for p in (arg or "fashion_mnist").split(",") if p]
  dataset = parts[0]
  size = parts[1] if len(parts) > 1 else "full"
  if dataset not in DATASETS:
    raise ValueError(
        f"Unknown dataset {dataset!r} in the config argument; valid datasets:"
        f" {', '.join(DATASETS)}.")
  if size not in SIZES or len(parts) > 2:
    raise ValueError(
        f"config argument {arg!r} must be 'DATASET' or 'DATASET,SIZE' with"
        f" SIZE in {', '.join(SIZES)}.")
  return dataset, size


def base_config(arg: str | None) -> ml_collections.ConfigDict:
  """Everything but `method` and `loss`, for the dataset and size in `arg`."""
  dataset, size = parse_arg(arg)
  preset = DATASETS[dataset]
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.dataset = dataset
  config.size = size
  config.num_views = 2
  # Every field the reader accepts (data_dir, source, download, cache_dir,
  # and the reader's own), so that each can be set from the command line.
  config.data = dict(data_lib.default_config(preset["data"]["name"]),
                     **preset["data"])
  config.augment = dict(preset["augment"])
  model = dict(preset["model"], projection_dims=(512, 128))
  recipe = _cpu_recipe(dataset, size) if size in ("small", "cpu") else None
  if recipe is not None:
    model.update(recipe["model"], projection_dims=(256, 64))
    config.augment.update(recipe["augment"])
  if size == "tiny":
    model.update(_TINY_MODEL.get(model["name"], {}), projection_dims=(16, 8))
  # Every field the model accepts, at its default unless set above, so that
  # each can be overridden from the command line (`--config.model.bn_sums=`).
  config.model = dict(models.default_config(model["name"]).to_dict(), **model)

  config.optimizer = dict(
      name="lars", learning_rate=0.3, lr_scaling="linear", warmup_steps=500,
      weight_decay=1e-6, momentum=0.9)
  config.train = dict(
      batch_size=512, num_epochs=200, num_steps=0, log_every=50,
      checkpoint_every=1000, keep_checkpoints=3, eval_every=5000,
      progress=True,
      # Multi-host: how long a process waits for the others at the exchange
      # before each step (contrastive/train/agreement.py); it must cover the
      # first step's compilation and an evaluation.
      agreement_timeout_s=1800.0)
  config.eval = dict(
      final=True, batch_size=1024, knn_k=20, knn_temperature=0.07,
      # None: the whole split (the standard protocol). Placeholders, so that
      # a cap can be set from the command line.
      max_train_examples=config_dict.placeholder(int),
      max_test_examples=config_dict.placeholder(int),
      monitor_train_examples=10000, monitor_test_examples=2000,
      monitor_probe=False, baselines=(),
      alignment_examples=512, nuisance=preset["nuisance"],
      linear_probe=dict())
  # Several seeds (and float hyperparameters: `sweep`, e.g.
  # 'loss.temperature=0.1,0.5') trained by one process, each member in
  # <workdir>/members/<name> (contrastive/train/population.py). Empty: one
  # run. execution: 'auto', 'sequential' or 'vmap'.
  config.population = dict(seeds=(), sweep="", execution="auto")
  # MoCo's queue and momentum encoder (used when method == 'moco').
  config.moco = dict(queue_size=16384, momentum_start=0.99,
                     momentum_end=0.999, queue_init="empty")
  # (data, model): -1 takes every remaining device; kernels with at least
  # shard_min_size elements are split over `model` when it is > 1.
  config.mesh = dict(shape=(-1, 1), shard_min_size=2**18)
  # XLA options per backend for the train step (contrastive/train/compiler.py).
  # On CPU, XLA sends convolutions to YNNPACK by default; in jaxlib 0.10.2
  # those run on one thread, so ResNet-18's 3x3 convolutions took about
  # twice the wall time of XLA's own (Eigen) convolutions on the project's
  # 2-core AMD EPYC, and the whole step up to 1.9x longer
  # (benchmarks/README.md). YNNPACK keeps the matrix multiplications.
  # Kernel choice only: losses agree to float rounding
  # (tests/train/test_compiler.py).
  config.compiler = dict(cpu=dict(
      xla_cpu_experimental_ynn_fusion_type="LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"))

  if recipe is not None:
    config.optimizer.update(
        name="adamw", learning_rate=recipe["learning_rate"],
        lr_scaling="none", warmup_steps=recipe["warmup_steps"],
        weight_decay=1e-4)
    config.train.update(
        batch_size=recipe["batch_size"], num_epochs=0,
        num_steps=recipe["num_steps"], log_every=50,
        checkpoint_every=max(200, recipe["num_steps"] // 5), eval_every=0)
    config.moco.update(queue_size=32 * recipe["batch_size"])
  if size == "small":
    # The README job prints its accuracy beside these (evaluated the same way).
    config.eval.baselines = ("random_init", "input")
  if size == "tiny":
    config.optimizer.update(name="adamw", learning_rate=1e-3, lr_scaling="none",
                            warmup_steps=1, weight_decay=1e-4)
    config.train.update(batch_size=16, num_epochs=0, num_steps=4, log_every=1,
                        checkpoint_every=2, eval_every=0, progress=False)
    config.eval.update(batch_size=64, max_train_examples=256,
                       max_test_examples=128, alignment_examples=32,
                       linear_probe=dict(max_steps=20))
    config.moco.update(queue_size=64)
  return config
