"""Evaluation of a train state: kNN during training, the full set at the end.

Features are the backbone's output (`'features'`), as in the linear-probe
protocol of SimCLR and MoCo; alignment and uniformity use the normalised
projections of two augmented views (Wang & Isola 2020). Under MCL the
representation is the concatenation of every stage's features (finished
stages first, then the current encoder); alignment and uniformity are the
current encoder's.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

from contrastive import augment as augment_lib
from contrastive import evaluate as eval_lib
from contrastive.clustering import stages
from contrastive.evaluate import input_features
from contrastive.evaluate import protocol
from contrastive.train import embedding
from contrastive.train import experiment as experiment_lib


def _variables(state) -> dict[str, Any]:
  variables = {"params": state.params}
  if state.batch_stats:
    variables["batch_stats"] = state.batch_stats
  return variables


def representation_variables(state) -> list[dict[str, Any]]:
  """The encoders whose features, concatenated in this order, are the
  representation: MCL's finished stages, then the current encoder."""
  mcl = state.extra.get("mcl")
  earlier = stages.finished_encoders(mcl) if mcl is not None else []
  return [*earlier, _variables(state)]


def embed_representation(exp, state, dataset, max_examples=None,
                         metadata=()) -> dict[str, np.ndarray]:
  """'features' (the representation), 'label' and `metadata` of the first
  `max_examples` examples of `dataset`, as NumPy arrays."""
  fn = embedding.make_embed_fn(exp.deps.model, exp.preprocess, ("features",),
                               exp.mesh)
  parts = [embedding.embed_dataset(
      fn, variables, dataset, exp.mesh,
      batch_size=int(exp.config.eval.get("batch_size", 512)),
      max_examples=max_examples, metadata=metadata)
           for variables in representation_variables(state)]
  out = parts[-1]
  out["features"] = np.concatenate([p["features"] for p in parts], axis=-1)
  return out


def _knn(exp, train, test) -> float:
  cfg = exp.config.eval
  return float(eval_lib.knn_accuracy(
      train["features"], train["label"], test["features"], test["label"],
      num_classes=exp.train_data.info.num_classes,
      k=int(cfg.get("knn_k", 20)),
      temperature=float(cfg.get("knn_temperature", 0.07))))


def monitor(exp, state) -> dict[str, float]:
  """Accuracy logged during training (`config.train.eval_every`): kNN on
  `config.eval.monitor_{train,test}_examples` (None: the whole split), and
  with `config.eval.monitor_probe` the linear probe too (learning curves)."""
  cfg = exp.config.eval
  train = embed_representation(exp, state, exp.train_data,
                               cfg.get("monitor_train_examples", 5000))
  test = embed_representation(exp, state, exp.test_data,
                              cfg.get("monitor_test_examples", 1000))
  if not cfg.get("monitor_probe", False):
    return {"knn_monitor": _knn(exp, train, test)}
  scores = protocol.score_representation(
      train, test, num_classes=exp.train_data.info.num_classes,
      knn_k=int(cfg.get("knn_k", 20)),
      knn_temperature=float(cfg.get("knn_temperature", 0.07)),
      probe_options=dict(cfg.get("linear_probe", {})))
  return {"knn_monitor": scores["knn_accuracy"],
          "probe_monitor": scores["linear_probe_accuracy"]}


@functools.lru_cache(maxsize=16)
def _project_fn(model):
  """The jitted eval-mode projection of `model` (one program per model)."""
  return jax.jit(
      lambda variables, v: model.apply(variables, v, train=False)["projection"])


def _alignment_uniformity(exp, state, dataset, max_examples) -> dict[str, float]:
  x = dataset.get_batch(
      embedding.subset_indices(len(dataset), max_examples))["x"]
  rng = jax.random.PRNGKey(int(exp.config.seed) + 1)
  views = augment_lib.make_views(rng, x, exp.deps.augment, num_views=2)
  project = _project_fn(exp.deps.model)
  z1 = np.asarray(project(_variables(state), views[0]))
  z2 = np.asarray(project(_variables(state), views[1]))
  return {"alignment": float(eval_lib.alignment(z1, z2)),
          "uniformity": float(eval_lib.uniformity(np.concatenate([z1, z2])))}


def _nuisances(exp) -> tuple[str, ...]:
  name = exp.config.eval.get("nuisance")
  return (name,) if name else ()


def _score(exp, train, test) -> dict[str, float]:
  return protocol.score_with_config(
      train, test, num_classes=exp.train_data.info.num_classes,
      eval_config=exp.config.eval, seed=int(exp.config.seed))


def final(exp, state) -> dict[str, Any]:
  """kNN and linear-probe accuracy on the test split, alignment/uniformity,
  and a probe of each nuisance variable (speaker, subject) if present."""
  cfg = exp.config.eval
  train = embed_representation(exp, state, exp.train_data,
                               cfg.get("max_train_examples"))
  test = embed_representation(exp, state, exp.test_data,
                              cfg.get("max_test_examples"), _nuisances(exp))
  results: dict[str, Any] = _score(exp, train, test)
  results.update(_alignment_uniformity(
      exp, state, exp.test_data, int(cfg.get("alignment_examples", 512))))
  return results


def _labelled_subset(dataset, max_examples, metadata=()) -> tuple[
    np.ndarray, dict[str, np.ndarray]]:
  indices = embedding.subset_indices(len(dataset), max_examples)
  fields = {}
  for start in range(0, len(indices), 4096):
    batch = dataset.get_batch(indices[start:start + 4096])
    for key in ("label", *metadata):
      fields.setdefault(key, []).append(np.asarray(batch[key]))
  return indices, {k: np.concatenate(v) for k, v in fields.items()}


def input_baseline(exp, name: str) -> dict[str, float]:
  """The evaluation protocol applied to input representation `name`
  (`contrastive.evaluate.input_features`) of the run's data, on the same
  examples as `final`."""
  cfg = exp.config.eval
  # The audio representations use the front end's own defaults (64 mels
  # every 10 ms), whatever the encoder's: a recipe that gives its encoder a
  # coarser front end must not weaken the baseline it is compared with.
  train_f, test_f = input_features.input_features(
      name, exp.train_data, exp.test_data)
  train_idx, train = _labelled_subset(exp.train_data,
                                      cfg.get("max_train_examples"))
  test_idx, test = _labelled_subset(exp.test_data, cfg.get("max_test_examples"),
                                    _nuisances(exp))
  train["features"], test["features"] = train_f[train_idx], test_f[test_idx]
  return _score(exp, train, test)


def random_init_baseline(exp) -> dict[str, float]:
  """The evaluation protocol applied to the run's encoder at initialisation
  (the same seed's initial parameters)."""
  state, _ = experiment_lib.init_state(exp)
  cfg = exp.config.eval
  train = embed_representation(exp, state, exp.train_data,
                               cfg.get("max_train_examples"))
  test = embed_representation(exp, state, exp.test_data,
                              cfg.get("max_test_examples"), _nuisances(exp))
  return _score(exp, train, test)


def baselines(exp, input_cache: dict[str, Any] | None = None
              ) -> dict[str, dict[str, float]]:
  """The baselines named in `config.eval.baselines`: 'random_init' and
  'input' (every input representation of the data's modality, as
  `input_<name>`), each scored like the trained encoder. `input_cache`
  keeps the input baselines (they do not depend on the seed) for the other
  members of a population."""
  out = {}
  input_cache = {} if input_cache is None else input_cache
  for which in exp.config.eval.get("baselines", ()):
    if which == "random_init":
      out["random_init"] = random_init_baseline(exp)
    elif which == "input":
      for name in input_features.names_for(exp.train_data.info.modality):
        key = f"input_{name}"
        if key not in input_cache:
          input_cache[key] = input_baseline(exp, name)
        out[key] = input_cache[key]
    else:
      raise ValueError(
          f"Unknown baseline {which!r} in config.eval.baselines; valid:"
          " 'random_init', 'input'.")
  return out


def results_table(results: dict[str, Any], name: str = "this run") -> str:
  """The run's kNN and linear-probe accuracy beside its baselines, as a
  Markdown table (what `launch.main` prints at the end). For a population,
  one row per member, their mean, and each baseline's mean over the members
  (the random-init encoder differs by seed; the input features do not)."""
  members = results.get("members")
  metrics = ("knn_accuracy", "linear_probe_accuracy")
  if members:
    scored = {m: r for m, r in members.items() if "knn_accuracy" in r}
    rows = [(f"{name} {member}", r) for member, r in scored.items()]
    if len(scored) > 1:
      rows.append((f"{name}, mean of {len(scored)}", {
          k: float(np.mean([r[k] for r in scored.values()])) for k in metrics}))
    baselines: dict[str, list] = {}
    for r in scored.values():
      for label, b in r.get("baselines", {}).items():
        baselines.setdefault(label, []).append(b)
    for label, bs in baselines.items():
      same = all(b[k] == bs[0][k] for b in bs for k in metrics)
      rows.append((label if same else f"{label}, mean of {len(bs)}",
                   {k: float(np.mean([b[k] for b in bs])) for k in metrics}))
  else:
    rows = [(name, results), *results.get("baselines", {}).items()]
  lines = ["| representation | kNN % | linear probe % |", "|---|---:|---:|"]
  for label, r in rows:
    if "knn_accuracy" not in r:
      continue
    lines.append(f"| {label} | {100 * r['knn_accuracy']:.1f} |"
                 f" {100 * r['linear_probe_accuracy']:.1f} |")
  return "\n".join(lines)
