"""Atomic, resumable checkpoints of the train state and the data position.

Orbax writes each checkpoint into a temporary directory and renames it when
complete, so a run killed mid-save leaves the previous checkpoint intact; the
manager keeps the last `max_to_keep`. The data iterator's position is saved
beside the state (as JSON), so a resumed run sees exactly the batches an
uninterrupted run would have seen.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import orbax.checkpoint as ocp


def abstract_like(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs carrying shardings: the restore target."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      tree, shardings)


class Checkpointer:
  """Saves and restores `(state, data_state)` under `directory`.

  Example:
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=3)
    if ckpt.latest_step() is not None:
      state, data_state = ckpt.restore(abstract_state)
    ...
    ckpt.save(step, state, iterator.get_state())
    ckpt.close()
  """

  def __init__(self, directory: str, *, max_to_keep: int = 3):
    self._manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            # Saves overlap with training; `close()` waits for the last one.
            enable_async_checkpointing=True,
        ),
        item_names=("state", "data"),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: Mapping[str, Any], *,
           force: bool = False) -> bool:
    """Starts saving; returns whether a checkpoint is being written."""
    if step in self._manager.all_steps():
      return False
    return self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(dict(data_state)),
        ),
        force=force,
    )

  def restore(self, abstract_state: Any, step: int | None = None):
    """Restores `(state, data_state)` from `step` (default: the latest)."""
    step = self._manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError("no checkpoint to restore from.")
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=ocp.args.JsonRestore(),
        ),
    )
    return restored["state"], restored["data"]

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
