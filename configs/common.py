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
    # DCL's and HCL's STL-10 code: each view a crop of the whole 96 x 96
    # image (area 0.08-1), resized to 32 x 32 on the host, SimCLR's colour
    # recipe and a 3 x 3 blur with p = 0.5; evaluation on the whole 96 x 96
    # images; ResNet-50 with the small-image stem. (They pretrain on
    # train+unlabelled; this reads the labelled train split.)
    "stl10": dict(
        data=dict(name="stl10"),
        augment=dict(name="simclr", image_size=32, crop_on="host",
                     blur_prob=0.5, blur_kernel_size=3),
        model=dict(name="resnet50", stem="cifar", width=64),
        nuisance=None,
    ),
    # ImageNet: crops of the whole image on the host (MoCo v2's area
    # 0.2-1 by default; SimCLR's configs switch to its 0.08-1 recipe,
    # `paper_image_recipe`); evaluation: short side 256, centre 224.
    "imagenet2012": dict(
        data=dict(name="imagenet2012", image_size=224, eval_resize=256),
        augment=dict(name="mocov2", image_size=224, crop_on="host"),
        model=dict(name="resnet50", stem="imagenet", width=64),
        nuisance=None,
    ),
    # ImageNet-100 (CMC's 100-class subset) as a folder of class folders:
    # --config.data.data_dir=/data/imagenet100 (train/, val/).
    "imagenet100": dict(
        data=dict(name="imagenet100", image_size=224, eval_resize=256),
        augment=dict(name="mocov2", image_size=224, crop_on="host"),
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


# The papers' recipes for the image datasets at the `full` size, per method
# family ('simclr': in-batch negatives, SimCLR, DCL, HCL; 'moco': MoCo v2),
# applied by the method's config (`paper_image_recipe`). `augment` applies
# at every size (a small run tries the recipe it scales down); the rest at
# `full` only. `infonce_temperature` replaces plain InfoNCE's only.
_IMAGENET_TRAIN = {"imagenet2012": 1281167, "imagenet100": 126689}
PAPER_IMAGE_RECIPES = {
    # SimCLR (Chen et al. 2020), ImageNet: crops of area 0.08-1, colour
    # strength 1.0, blur p = 0.5; LARS 0.3 x batch / 256, weight decay 1e-6,
    # 10 warm-up epochs, batch 4096, 1000 epochs, t = 0.1.
    **{(name, "simclr"): dict(
        augment=dict(name="simclr", jitter_strength=1.0, blur_prob=0.5),
        optimizer=dict(name="lars", learning_rate=0.3, lr_scaling="linear",
                       warmup_steps=10 * (size // 4096), weight_decay=1e-6,
                       momentum=0.9),
        train=dict(batch_size=4096, num_epochs=1000),
        infonce_temperature=0.1) for name, size in _IMAGENET_TRAIN.items()},
    # MoCo v2 (Chen et al. 2020): crops of area 0.2-1, colour 0.4/0.4/0.4/
    # 0.1, blur p = 0.5; SGD 0.03 x batch / 256, momentum 0.9, weight decay
    # 1e-4, batch 256, 200 epochs (cosine), t = 0.2, a constant momentum
    # 0.999 and a queue of 65,536 keys (16,384 for the 10x smaller
    # ImageNet-100, as CMC's).
    **{(name, "moco"): dict(
        augment=dict(name="mocov2"),
        optimizer=dict(name="sgd", learning_rate=0.03, lr_scaling="linear",
                       warmup_steps=0, weight_decay=1e-4, momentum=0.9),
        train=dict(batch_size=256, num_epochs=200),
        moco=dict(queue_size=65536 if name == "imagenet2012" else 16384,
                  momentum_start=0.999, momentum_end=0.999),
        infonce_temperature=0.2) for name in _IMAGENET_TRAIN},
    # DCL / HCL code on STL-10: Adam 1e-3, weight decay 1e-6, batch 256,
    # 400 epochs, t = 0.5 (the crops are in DATASETS['stl10']).
    ("stl10", "simclr"): dict(
        augment={},
        optimizer=dict(name="adamw", learning_rate=1e-3, lr_scaling="none",
                       warmup_steps=0, weight_decay=1e-6),
        train=dict(batch_size=256, num_epochs=400),
        infonce_temperature=0.5),
}


def paper_image_recipe(config, family: str) -> None:
  """Applies `PAPER_IMAGE_RECIPES[(config.dataset, family)]`, if any, to
  `config` (after its `loss` is set): the augmentation at every size, the
  optimizer, batch, epochs, queue and InfoNCE temperature at `full`."""
  recipe = PAPER_IMAGE_RECIPES.get((config.dataset, family))
  if recipe is None:
    return
  config.augment.update(recipe["augment"])
  if config.size != "full":
    return
  config.optimizer.update(recipe["optimizer"])
  config.train.update(recipe["train"])
  if "moco" in recipe:
    config.moco.update(recipe["moco"])
  if config.loss.name == "infonce":
    config.loss.temperature = recipe["infonce_temperature"]
    if family == "moco":  # MoCo v2 scores q1 -> k2 only
      config.loss.symmetric_queue = False


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
      # Worker processes making the batches ahead (image decoding and host
      # crops; contrastive/data/prefetch.py); 0: in the training process.
      data_workers=0,
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
