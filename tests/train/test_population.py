"""Populations: members equal their solo runs, resume, fail alone, and the
config expands into members as documented."""
from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from configs import mcl
from configs import simclr
from contrastive.train import population
from contrastive.train.loop import train_and_evaluate
from contrastive.train.loop import train_population
from tests.train.test_resume import StopAfter
from tests.train.test_resume import final_state as _state

STEPS = 3


def _config(seed=0, **loss):
  config = simclr.get_config("uci_hapt,tiny")
  config.train.num_steps = STEPS
  config.train.checkpoint_every = 2
  config.seed = seed
  config.loss.update(loss)
  return config


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def _assert_trees(a, b, **tol):
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b):
    if tol:
      np.testing.assert_allclose(np.asarray(x, np.float64),
                                 np.asarray(y, np.float64), **tol)
    else:
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def solo(tmp_path_factory):
  """Solo runs: seeds 0 and 1 at t = 0.5, seed 2 at t = 0.2."""
  root = tmp_path_factory.mktemp("solo")
  runs = {}
  for name, config in (("s0", _config(0)), ("s1", _config(1)),
                       ("s2_t02", _config(2, temperature=0.2))):
    runs[name] = (config, str(root / name),
                  train_and_evaluate(config, str(root / name)))
  return runs


def test_seed_members_are_their_solo_runs_bitwise(solo, tmp_path):
  configs = [_config(0), _config(1)]
  dirs = [str(tmp_path / "m0"), str(tmp_path / "m1")]
  outcomes = train_population(configs, dirs, execution="sequential")
  for outcome, key in zip(outcomes, ("s0", "s1")):
    config, solo_dir, solo_results = solo[key]
    assert outcome.error is None
    assert outcome.results == solo_results
    state, data = _state(config, outcome.workdir)
    solo_state, solo_data = _state(config, solo_dir)
    assert data == solo_data
    _assert_trees(state, solo_state)
    assert _losses(outcome.workdir) == _losses(solo_dir)
  # Seeds differ: the members are not copies of one another.
  assert _losses(dirs[0]) != _losses(dirs[1])


@pytest.mark.parametrize("execution", ["sequential", "vmap"])
def test_swept_temperature_members_match_solo_runs(solo, tmp_path, execution):
  """One compiled step, temperature per member (traced): each member ends
  where its solo run (temperature bound at trace time) does, to float
  rounding."""
  configs = [_config(0), _config(2, temperature=0.2)]
  dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
  outcomes = train_population(configs, dirs, execution=execution)
  for outcome, key in zip(outcomes, ("s0", "s2_t02")):
    config, solo_dir, solo_results = solo[key]
    state, _ = _state(config, outcome.workdir)
    solo_state, _ = _state(config, solo_dir)
    _assert_trees(state.params, solo_state.params, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose([l for _, l in _losses(outcome.workdir)],
                               [l for _, l in _losses(solo_dir)], rtol=1e-5)
    assert outcome.results["knn_accuracy"] == pytest.approx(
        solo_results["knn_accuracy"], abs=0.02)


def test_learning_rate_member_matches_its_solo_run(tmp_path):
  slow = _config(0)
  fast = _config(0)
  fast.optimizer.learning_rate = 3 * slow.optimizer.learning_rate
  solo_dir = str(tmp_path / "solo")
  train_and_evaluate(fast, solo_dir)
  outcomes = train_population([slow, fast], [str(tmp_path / "slow"),
                                              str(tmp_path / "fast")])
  state, _ = _state(fast, outcomes[1].workdir)
  solo_state, _ = _state(fast, solo_dir)
  _assert_trees(state.params, solo_state.params, rtol=2e-4, atol=2e-5)
  slow_state, _ = _state(slow, outcomes[0].workdir)
  moved = lambda s: max(float(np.abs(x).max()) for x in
                        jax.tree.leaves(s.opt_state[0].mu))
  assert moved(slow_state) > 0
  # The logged learning rate is the member's own.
  rates = lambda d: [json.loads(l)["learning_rate"] for l in
                     open(os.path.join(d, "metrics.jsonl"))
                     if "learning_rate" in l]
  np.testing.assert_allclose(rates(outcomes[1].workdir),
                             3 * np.array(rates(outcomes[0].workdir)),
                             rtol=1e-6)


def test_vmap_population_resumes_where_it_stopped(tmp_path):
  configs = [_config(0), _config(1)]
  straight = [str(tmp_path / "x0"), str(tmp_path / "x1")]
  train_population(configs, straight, execution="vmap")
  dirs = [str(tmp_path / "r0"), str(tmp_path / "r1")]
  stopped = train_population(configs, dirs, execution="vmap",
                             guard=StopAfter(2))
  assert [o.results for o in stopped] == [{"preempted": True, "step": 2}] * 2
  resumed = train_population(configs, dirs, execution="vmap")
  for a, b, config in zip(straight, dirs, configs):
    _assert_trees(_state(config, a)[0], _state(config, b)[0])
    assert [s for s, _ in _losses(b)] == [1, 2, 3]
  assert all(o.results["step"] == STEPS for o in resumed)


def test_a_member_with_a_non_finite_loss_fails_alone(tmp_path):
  good, bad = _config(0), _config(1)
  bad.optimizer.learning_rate = 1e12
  for c in (good, bad):
    c.train.num_steps = 6
  outcomes = train_population([good, bad], [str(tmp_path / "good"),
                                            str(tmp_path / "bad")])
  assert outcomes[0].error is None and outcomes[0].results["step"] == 6
  assert isinstance(outcomes[1].error, FloatingPointError)
  assert "lower the learning rate" in str(outcomes[1].error)
  with pytest.raises(FloatingPointError):
    outcomes[1].unwrap()


def test_member_configs_expand_seeds_and_sweeps():
  config = _config()
  config.population = dict(seeds=(3, 4),
                           sweep=dict(loss=dict(temperature=(0.1, 0.5))))
  members = population.member_configs(config)
  assert [(m.seed, m.loss.temperature) for m in members] == [
      (3, 0.1), (4, 0.1), (3, 0.5), (4, 0.5)]
  assert all(m.population is None for m in members)
  sweep = population.sweep_of(members)
  assert sweep == population.Sweep(loss=("temperature",))
  assert population.member_name(members[2], sweep) == "seed3-temperature=0.5"
  hparams = population.member_hparams(members[2], members[0], sweep)
  assert float(hparams["loss"]["temperature"]) == 0.5
  assert population.member_configs(_config()) == [_config()]


def test_population_errors_name_the_field():
  config = _config()
  config.population = dict(seeds=(0,),
                           sweep=dict(train=dict(batch_size=(8, 16))))
  with pytest.raises(ValueError, match="sweepable fields of this config:"
                     " loss.temperature, optimizer.learning_rate"):
    population.member_configs(config)
  other = _config()
  other.train.batch_size = 32
  with pytest.raises(ValueError, match=r"config.train.batch_size"):
    population.sweep_of([_config(), other])
  with pytest.raises(ValueError, match="valid: auto, sequential, vmap"):
    population.resolve_execution("parallel", has_hooks=False)
  with pytest.raises(ValueError, match="use execution='sequential'"):
    population.resolve_execution("vmap", has_hooks=True)
  assert population.resolve_execution("auto", has_hooks=False,
                                      backend="gpu") == "vmap"
  assert population.resolve_execution("auto", has_hooks=True,
                                      backend="tpu") == "sequential"
  assert population.resolve_execution("auto", has_hooks=False,
                                      backend="cpu") == "sequential"


def test_mcl_population_refuses_vmap(tmp_path):
  configs = [mcl.get_config("uci_hapt,tiny") for _ in range(2)]
  configs[1].seed = 1
  with pytest.raises(ValueError, match="cannot run hooks"):
    train_population(configs, [str(tmp_path / "a"), str(tmp_path / "b")],
                     execution="vmap")


def test_launcher_trains_a_population_from_the_command_line(tmp_path):
  """--config.population.* from the command line: members in
  <workdir>/members/<name>, population.json, a table with every member."""
  import pathlib
  import subprocess
  import sys
  root = pathlib.Path(__file__).resolve().parents[2]
  workdir = tmp_path / "pop"
  proc = subprocess.run(
      [sys.executable, "-m", "launch.main",
       "--config=configs/simclr.py:uci_hapt,tiny", f"--workdir={workdir}",
       "--config.train.num_steps=2", "--config.population.seeds=(0,1)",
       "--config.population.sweep=loss.temperature=0.2,0.5"],
      cwd=root, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  names = ["seed0-temperature=0.2", "seed1-temperature=0.2",
           "seed0-temperature=0.5", "seed1-temperature=0.5"]
  saved = json.loads((workdir / "population.json").read_text())
  assert list(saved["members"]) == names
  for name in names:
    results = json.loads(
        (workdir / "members" / name / "results.json").read_text())
    assert results == saved["members"][name]
    assert f"| simclr {name} | {100 * results['knn_accuracy']:.1f} |" in (
        proc.stdout)
