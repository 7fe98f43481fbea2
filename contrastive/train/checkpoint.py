"""Atomic, verified, resumable checkpoints of the train state and data position.

Orbax writes each checkpoint into a temporary directory and renames it when
complete, so a run killed mid-save leaves the previous checkpoint intact; the
manager keeps the last `max_to_keep`. The data iterator's position is saved
beside the state (as JSON), so a resumed run sees exactly the batches an
uninterrupted run would have seen.

Orbax does not notice a file that was damaged after it was written (a bit
flip, a truncated copy): it restores whatever bytes it finds. So, once a
checkpoint is complete, process 0 writes a manifest into it
(`MANIFEST_NAME`: every file's size and SHA-256), and `restore` checks the
manifest before reading. A checkpoint that fails the check, fails to
restore, or restores non-finite values is moved aside into
`<directory>.corrupt/` with a warning naming it and the file at fault, and
the next older checkpoint is tried. A non-finite state is never saved: it
would make every later resume start from NaN.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

MANIFEST_NAME = "contrastive_manifest.json"
_CHUNK = 1 << 22


class NonFiniteStateError(FloatingPointError):
  """The state holds NaN or inf; it was not saved."""


class CheckpointError(RuntimeError):
  """No checkpoint in the directory could be restored."""


def abstract_like(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs carrying shardings: the restore target."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      tree, shardings)


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def is_finite(tree: Any) -> bool:
  """Whether every float array of `tree` is finite (one device reduction;
  the same answer on every process of a multi-host run)."""
  return bool(jax.device_get(_all_finite(tree)))


def _size_and_digest(path: epath.Path) -> tuple[int, str]:
  digest, size = hashlib.sha256(), 0
  with path.open("rb") as f:
    for block in iter(lambda: f.read(_CHUNK), b""):
      digest.update(block)
      size += len(block)
  return size, digest.hexdigest()


def _walk(directory: epath.Path, prefix: str = ""):
  """`(relative name, path)` of every file below `directory` (epath's
  rglob refuses remote paths)."""
  for path in sorted(directory.iterdir()):
    if path.is_dir():
      yield from _walk(path, f"{prefix}{path.name}/")
    else:
      yield f"{prefix}{path.name}", path


def write_manifest(step_dir: str | os.PathLike[str]) -> None:
  """Records every file's size and SHA-256 (atomically: temp + rename)."""
  step_dir = epath.Path(step_dir)
  files = {rel: list(_size_and_digest(path))
           for rel, path in _walk(step_dir)
           if not rel.startswith(MANIFEST_NAME)}
  tmp = step_dir / (MANIFEST_NAME + ".tmp")
  tmp.write_text(json.dumps({"version": 1, "files": files}))
  tmp.rename(step_dir / MANIFEST_NAME)


def verify(step_dir: str | os.PathLike[str]) -> str | None:
  """None if the checkpoint matches its manifest, else what is wrong
  (naming the file). A checkpoint without a manifest (written before
  manifests existed, or killed between completion and the manifest) is
  accepted as orbax left it."""
  step_dir = epath.Path(step_dir)
  path = step_dir / MANIFEST_NAME
  if not path.exists():
    return None
  try:
    files = json.loads(path.read_text())["files"]
  except (OSError, ValueError, KeyError) as e:
    return f"{path}: unreadable manifest ({e})"
  for rel, (size, digest) in sorted(files.items()):
    full = step_dir / rel
    if not full.exists():
      return f"{full}: missing"
    got_size, got_digest = _size_and_digest(full)
    if got_size != size:
      return (f"{full}: {got_size} bytes, {size} when saved (truncated or"
              " overwritten)")
    if got_digest != digest:
      return f"{full}: contents changed since it was saved (checksum)"
  return None


class Checkpointer:
  """Saves and restores `(state, data_state)` under `directory`.

  Example:
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=3)
    restored = ckpt.restore_latest(abstract_state)   # None: start afresh
    ...
    ckpt.save(step, state, iterator.get_state())
    ckpt.close()
  """

  def __init__(self, directory: str, *, max_to_keep: int = 3):
    # Local paths absolute (orbax requires it); remote ones (gs://) as given.
    self._directory = str(epath.Path(directory).resolve()
                          if "://" not in str(directory) else directory)
    self._manager = ocp.CheckpointManager(
        self._directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            # Saves overlap with training; `close()` waits for the last one.
            enable_async_checkpointing=True,
        ),
        item_names=("state", "data"),
    )
    self._unsealed: list[int] = []
    self._closed = False

  @property
  def directory(self) -> str:
    return self._directory

  def step_dir(self, step: int) -> epath.Path:
    return epath.Path(self._directory) / str(step)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def _seal(self) -> None:
    """Writes the manifests of the saves that have completed (process 0;
    the others wait for it, so that no process restores a half-written
    manifest)."""
    if not self._unsealed:
      return
    self._manager.wait_until_finished()
    if jax.process_index() == 0:
      for step in self._unsealed:
        if self.step_dir(step).is_dir():
          write_manifest(self.step_dir(step))
    self._unsealed = []

  def save(self, step: int, state: Any, data_state: Mapping[str, Any], *,
           force: bool = False) -> bool:
    """Starts saving; returns whether a checkpoint is being written.

    Raises:
      NonFiniteStateError: the state holds NaN or inf (nothing is saved;
        the message names the last finite checkpoint to resume from).
    """
    if step in self._manager.all_steps():
      return False
    if not is_finite(state):
      self.wait()
      latest = self.latest_step()
      where = (f"the last finite checkpoint is step {latest} in"
               f" {self._directory}" if latest is not None else
               "no checkpoint was saved before it")
      raise NonFiniteStateError(
          f"the train state at step {step} holds NaN or inf; not saved"
          f" ({where}).")
    self._seal()
    started = self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(dict(data_state)),
        ),
        force=force,
    )
    if started:
      self._unsealed.append(step)
    return started

  def restore(self, abstract_state: Any, step: int | None = None):
    """Restores `(state, data_state)` from `step` (default: the latest),
    without fallback.

    Raises:
      FileNotFoundError: no checkpoint.
      CheckpointError: the checkpoint fails its manifest or cannot be read
        (the message names the directory and the file).
    """
    step = self._manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self._directory}.")
    problem = verify(self.step_dir(step))
    if problem is not None:
      raise CheckpointError(f"checkpoint {self.step_dir(step)}: {problem}")
    try:
      restored = self._manager.restore(
          step,
          args=ocp.args.Composite(
              state=ocp.args.StandardRestore(abstract_state),
              data=ocp.args.JsonRestore(),
          ),
      )
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(
          f"checkpoint {self.step_dir(step)} could not be read:"
          f" {type(e).__name__}: {e}") from e
    if not is_finite(restored["state"]):
      raise CheckpointError(
          f"checkpoint {self.step_dir(step)} holds NaN or inf values.")
    if not isinstance(restored["data"], dict):
      raise CheckpointError(
          f"checkpoint {self.step_dir(step)}: the data position"
          f" ({self.step_dir(step) / 'data'}) is not a JSON"
          " object.")
    return restored["state"], restored["data"]

  def restore_latest(self, abstract_state: Any):
    """The newest checkpoint that verifies and restores, as `(step, state,
    data_state)`, or None when there is no checkpoint.

    A checkpoint that fails is moved into `<directory>.corrupt/` (so that a
    later save of the same step is not skipped) with a warning naming it,
    and the next older one is tried.

    Raises:
      CheckpointError: checkpoints exist but none could be restored.
    """
    failures = []
    for step in sorted(self.all_steps(), reverse=True):
      try:
        state, data = self.restore(abstract_state, step)
      except CheckpointError as e:
        logging.warning("%s; falling back to an earlier checkpoint.", e)
        failures.append(str(e))
        self._set_aside(step)
        continue
      if failures:
        logging.warning("resuming from step %d in %s (the newer checkpoints"
                        " failed, see above).", step, self._directory)
      return step, state, data
    if failures:
      raise CheckpointError(
          "no checkpoint could be restored (each was moved to"
          f" {self._directory}.corrupt/):\n  " + "\n  ".join(failures) +
          f"\nMove {self._directory} away to start afresh.")
    return None

  def _set_aside(self, step: int) -> None:
    # Every process has tried the same files and reached the same verdict;
    # wait for all of them before process 0 moves the directory.
    multihost_utils.sync_global_devices(f"checkpoint_set_aside_{step}")
    if jax.process_index() == 0:
      aside = epath.Path(self._directory + ".corrupt")
      aside.mkdir(parents=True, exist_ok=True)
      self.step_dir(step).rename(
          aside / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
    multihost_utils.sync_global_devices(f"checkpoint_set_aside_{step}_done")
    self._manager.reload()

  def wait(self) -> None:
    if self._closed:
      return
    self._manager.wait_until_finished()
    self._seal()

  def close(self) -> None:
    """Waits for the save in flight and seals it; idempotent."""
    if self._closed:
      return
    self.wait()
    self._manager.close()
    self._closed = True

