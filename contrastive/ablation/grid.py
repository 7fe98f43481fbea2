"""The runs of a sweep: methods x datasets x seeds, and each run's config.

A sweep config (`configs/ablation.py`) names the methods, datasets and seeds
and how to build each run's config from a method's config file::

  sweep.methods         ('simclr', 'dcl', ...)       the order of the table
  sweep.method_specs    {name: {config, kind, arg_suffix, datasets, seeds,
                                input, overrides, dataset_overrides}}
  sweep.datasets, sweep.seeds, sweep.size
  sweep.run_overrides   applied to every run (the per-run budget)
  sweep.dataset_overrides  {dataset: overrides}

A run's config is `configs/<spec.config>.py:get_config('<dataset>,<size>'
+ arg_suffix)`, then `run_overrides`, `dataset_overrides[dataset]`,
`spec.overrides` and `spec.dataset_overrides[dataset]` merged in that order,
then `seed`. Overrides are nested mappings, e.g.
`{'train': {'num_steps': 0}}`; a spec's `dataset_overrides` reach fields
that only its method's config has (MCL's steps per stage).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import sys
from typing import Any, Mapping

import ml_collections

from contrastive import config_sections

# How a run is made: trained by `contrastive.train.loop` (the seeds of one
# method and dataset as one population), by the cross-entropy baseline of
# `contrastive.ablation.supervised`, or an input representation scored
# without training (`contrastive.evaluate.input_features`; spec `input`).
KINDS = ("contrastive", "supervised", "input")
DEFAULT_CONFIGS_DIR = pathlib.Path(__file__).resolve().parents[2] / "configs"


@dataclasses.dataclass(frozen=True)
class Run:
  """One cell of the grid.

  Attributes:
    method: the method's name in the sweep (a key of `method_specs`).
    dataset: the dataset's name (a key of `configs.common.DATASETS`).
    seed: the run's seed.
    kind: one of `KINDS`.
  """

  method: str
  dataset: str
  seed: int
  kind: str = "contrastive"

  @property
  def run_id(self) -> str:
    """The run's folder name under the sweep's `runs/`."""
    return f"{self.dataset}__{self.method}__seed{self.seed}"


def method_specs(sweep: Any) -> dict[str, dict[str, Any]]:
  """The sweep's method specs as plain dicts with every field filled in."""
  specs = config_sections.as_dict(sweep.method_specs, "sweep.method_specs")
  out = {}
  for name in sweep.methods:
    if name not in specs:
      raise ValueError(
          f"method {name!r} of sweep.methods has no entry in"
          " sweep.method_specs; specified methods:"
          f" {', '.join(sorted(specs))}.")
    spec = dict(config=name, kind="contrastive", arg_suffix="", datasets=None,
                seeds=None, input=None, overrides={}, dataset_overrides={})
    spec.update(config_sections.as_dict(specs[name],
                                        f"sweep.method_specs.{name}"))
    if spec["kind"] not in KINDS:
      raise ValueError(
          f"method {name!r} has kind {spec['kind']!r}; valid kinds:"
          f" {', '.join(KINDS)}.")
    if (spec["kind"] == "input") != (spec["input"] is not None):
      raise ValueError(
          f"method {name!r}: kind 'input' and the field `input` (the input"
          " representation's name) go together.")
    out[name] = spec
  return out


def expand(sweep: Any) -> list[Run]:
  """Every run of the sweep, dataset-major, then method, then seed.

  A method whose spec lists `datasets` runs on those only (e.g. CCL-K's fair
  mode needs a nuisance variable), one whose spec lists `seeds` on those
  (an input representation has no randomness: one seed).

  Example:
    >>> runs = expand(configs.ablation.get_config('smoke'))
    >>> runs[0].run_id
    'uci_hapt__random_init__seed0'
  """
  specs = method_specs(sweep)
  if not sweep.seeds:
    raise ValueError("sweep.seeds is empty; give at least one seed.")
  runs = []
  for dataset in sweep.datasets:
    for name in sweep.methods:
      allowed = specs[name]["datasets"]
      if allowed is not None and dataset not in allowed:
        continue
      seeds = specs[name]["seeds"]
      for seed in sweep.seeds if seeds is None else seeds:
        runs.append(Run(name, dataset, int(seed), specs[name]["kind"]))
  return runs


def groups(runs: list[Run]) -> list[list[Run]]:
  """The runs of each (dataset, method) together, in grid order: the seeds
  that one population trains."""
  out: dict[tuple[str, str], list[Run]] = {}
  for run in runs:
    out.setdefault((run.dataset, run.method), []).append(run)
  return list(out.values())


def load_config_module(name: str,
                       configs_dir: str | pathlib.Path | None = None):
  """Imports `<configs_dir>/<name>.py` by path (configs is not a package
  that an installed `contrastive` carries).

  The config files import `configs.common`, so the folder above
  `configs_dir` is appended to `sys.path` if it is not there yet (a
  notebook's working directory is rarely the repository root).
  """
  folder = pathlib.Path(configs_dir or DEFAULT_CONFIGS_DIR)
  if str(folder.parent) not in sys.path:
    sys.path.append(str(folder.parent))
  path = folder / f"{name}.py"
  if not path.is_file():
    available = sorted(p.stem for p in folder.glob("*.py")
                       if not p.stem.startswith("_"))
    raise ValueError(
        f"no config file {path}; configs in {folder}: {', '.join(available)}.")
  spec = importlib.util.spec_from_file_location(f"_ablation_configs_{name}",
                                                path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def merge_overrides(config: ml_collections.ConfigDict,
                    overrides: Mapping[str, Any], prefix: str = "config"
                    ) -> None:
  """Recursively sets `overrides` on `config`; unknown fields are an error.

  A ConfigDict value that is a mapping is merged field by field; any other
  value replaces the field (None included).
  """
  for key, value in config_sections.as_dict(overrides, prefix).items():
    if key not in config:
      raise ValueError(
          f"override {prefix}.{key} names no field; fields of {prefix}:"
          f" {', '.join(sorted(config.keys()))}.")
    current = config[key]
    if isinstance(current, ml_collections.ConfigDict) and isinstance(
        value, Mapping):
      merge_overrides(current, value, f"{prefix}.{key}")
    else:
      with config.ignore_type():
        config[key] = value


def run_config(run: Run, sweep: Any,
               configs_dir: str | pathlib.Path | None = None
               ) -> ml_collections.ConfigDict:
  """The full config of `run`, ready for `train_and_evaluate`."""
  spec = method_specs(sweep)[run.method]
  module = load_config_module(spec["config"], configs_dir)
  config = module.get_config(
      f"{run.dataset},{sweep.size}{spec['arg_suffix']}")
  merge_overrides(config, sweep.get("run_overrides", {}))
  per_dataset = config_sections.as_dict(sweep.get("dataset_overrides", {}),
                                        "sweep.dataset_overrides")
  merge_overrides(config, per_dataset.get(run.dataset, {}))
  merge_overrides(config, spec["overrides"])
  merge_overrides(config, config_sections.as_dict(
      spec["dataset_overrides"],
      f"sweep.method_specs.{run.method}.dataset_overrides").get(run.dataset,
                                                                {}))
  config.seed = run.seed
  if spec["input"] is not None:
    with config.unlocked():
      config.input = spec["input"]
  return config
