"""Checkpoints that cannot restore garbage: damaged files are detected by the
manifest and skipped for the newest good checkpoint; non-finite state is
never saved; a NaN stop keeps the last finite checkpoint and names it."""
from __future__ import annotations

import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import simclr
from contrastive.train import checkpoint as ckpt_lib
from contrastive.train.checkpoint import Checkpointer
from contrastive.train.checkpoint import CheckpointError
from contrastive.train.checkpoint import NonFiniteStateError
from contrastive.train.loop import train_and_evaluate


def _state(step: int):
  return {"w": jnp.full((64, 16), float(step)), "b": jnp.arange(8.0) + step,
          "count": jnp.array(step, jnp.int32)}


def _target():
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                      _state(0))


def _saved(tmp_path, steps=(1, 2, 3)) -> Checkpointer:
  ckpt = Checkpointer(str(tmp_path / "checkpoints"), max_to_keep=5)
  for step in steps:
    ckpt.save(step, _state(step), {"position": step * 10})
  ckpt.close()
  return Checkpointer(str(tmp_path / "checkpoints"), max_to_keep=5)


def _largest_state_file(step_dir: pathlib.Path) -> pathlib.Path:
  files = [p for p in (step_dir / "state").rglob("*") if p.is_file()]
  return max(files, key=lambda p: p.stat().st_size)


def test_every_checkpoint_gets_a_manifest_and_restores(tmp_path):
  ckpt = _saved(tmp_path)
  for step in (1, 2, 3):
    step_dir = tmp_path / "checkpoints" / str(step)
    manifest = json.loads((step_dir / ckpt_lib.MANIFEST_NAME).read_text())
    assert any(name.startswith("state/") for name in manifest["files"])
    assert ckpt_lib.verify(step_dir) is None
  step, state, data = ckpt.restore_latest(_target())
  assert step == 3 and data == {"position": 30}
  np.testing.assert_array_equal(state["w"], _state(3)["w"])


def _flip_bytes(path: pathlib.Path, count: int = 64) -> None:
  raw = bytearray(path.read_bytes())
  middle = len(raw) // 2
  for i in range(middle, min(len(raw), middle + count)):
    raw[i] ^= 0xFF
  path.write_bytes(bytes(raw))


def _truncate(path: pathlib.Path) -> None:
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage,expect", [
    (lambda d: _flip_bytes(_largest_state_file(d)), "checksum"),
    (lambda d: _truncate(_largest_state_file(d)), "truncated"),
    (lambda d: _largest_state_file(d).unlink(), "missing"),
    (lambda d: (d / "state" / "_METADATA").unlink(), "_METADATA: missing"),
    (lambda d: (d / "data" / "metadata").write_text("{not json"),
     "data/metadata"),
])
def test_damaged_latest_falls_back_to_the_previous(tmp_path, damage, expect,
                                                   caplog):
  ckpt = _saved(tmp_path)
  damaged = tmp_path / "checkpoints" / "3"
  if expect == "data/metadata" and not (damaged / "data" / "metadata").exists():
    pytest.skip("orbax stores the JSON item elsewhere in this version")
  damage(damaged)
  problem = ckpt_lib.verify(damaged)
  assert problem is not None and expect in problem, problem
  with pytest.raises(CheckpointError, match=str(damaged)):
    ckpt.restore(_target(), 3)
  step, state, data = ckpt.restore_latest(_target())
  assert step == 2 and data == {"position": 20}
  np.testing.assert_array_equal(state["b"], _state(2)["b"])
  assert "falling back" in caplog.text and str(damaged) in caplog.text
  # Set aside, so that a later save of step 3 is not skipped as existing.
  assert not damaged.exists()
  assert len(list((tmp_path / "checkpoints.corrupt").iterdir())) == 1
  assert ckpt.all_steps() == [1, 2]
  assert ckpt.save(3, _state(3), {"position": 30})
  ckpt.close()


def test_no_restorable_checkpoint_is_an_error_naming_each(tmp_path):
  ckpt = _saved(tmp_path, steps=(1, 2))
  for step in (1, 2):
    _flip_bytes(_largest_state_file(tmp_path / "checkpoints" / str(step)))
  with pytest.raises(CheckpointError) as info:
    ckpt.restore_latest(_target())
  assert "checkpoints/1" in str(info.value)
  assert "checkpoints/2" in str(info.value)


def test_checkpoint_without_manifest_is_still_restored(tmp_path):
  ckpt = _saved(tmp_path, steps=(1,))
  (tmp_path / "checkpoints" / "1" / ckpt_lib.MANIFEST_NAME).unlink()
  step, _, data = ckpt.restore_latest(_target())
  assert step == 1 and data == {"position": 10}


def test_non_finite_state_is_never_saved(tmp_path):
  ckpt = Checkpointer(str(tmp_path / "checkpoints"))
  ckpt.save(1, _state(1), {"position": 10})
  bad = dict(_state(2), b=jnp.array([1.0, jnp.nan] * 4))
  with pytest.raises(NonFiniteStateError,
                     match="last finite checkpoint is step 1"):
    ckpt.save(2, bad, {"position": 20})
  ckpt.close()
  assert ckpt.all_steps() == [1]


def _diverging_config(log_every: int, checkpoint_every: int):
  config = simclr.get_config("uci_hapt,tiny")
  config.optimizer.learning_rate = 1e9
  config.train.num_steps = 12
  config.train.log_every = log_every
  config.train.checkpoint_every = checkpoint_every
  config.eval.final = False
  return config


@pytest.mark.parametrize("log_every,checkpoint_every", [(1, 2), (10, 2),
                                                         (1, 1), (4, 3)])
def test_nan_stop_keeps_the_last_finite_checkpoint(tmp_path, log_every,
                                                   checkpoint_every):
  workdir = tmp_path / "run"
  config = _diverging_config(log_every, checkpoint_every)
  with pytest.raises(FloatingPointError) as info:
    train_and_evaluate(config, str(workdir))
  message = str(info.value)
  ckpt = Checkpointer(str(workdir / "checkpoints"))
  steps = ckpt.all_steps()
  if steps:
    assert f"last finite checkpoint is step {max(steps)}" in message
  else:
    assert "no checkpoint was saved" in message
  # Every checkpoint left restores finite values (restore checks it).
  from contrastive.train import experiment  # pylint: disable=g-import-not-at-top
  exp = experiment.build_experiment(config)
  shapes = experiment.abstract_state(exp)
  target = ckpt_lib.abstract_like(
      shapes, experiment.state_shardings(exp, shapes))
  for step in steps:
    ckpt.restore(target, step)
  ckpt.close()
