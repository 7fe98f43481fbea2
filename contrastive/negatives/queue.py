"""The MoCo queue of negative keys, as a pure, jit-friendly pytree.

MoCo (He et al., CVPR 2020) keeps the keys of the last `K` samples, produced by
the momentum encoder, as negatives: each step the newest batch of keys is
written over the oldest one (a FIFO ring buffer). Here the queue is an
immutable `flax.struct` dataclass; `enqueue` returns a new queue, so it can be
carried in a train state, jitted, sharded and checkpointed like any pytree.

Rows can carry integer metadata (a class label, a k-means cluster, the dataset
index of the sample that produced the key) so that masks such as "not the same
label" or "same cluster" (`contrastive.negatives.masks`) can be built against
the queue. Metadata rows that were never written hold -1 ("unknown").

The train step enqueues the GLOBAL batch (gathered across devices in a fixed
order) once per step, so every replica holds the same queue.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.struct
import jax
import jax.numpy as jnp

from contrastive import checks

Array = jax.Array

# Metadata of rows that were never written (or random-init rows): "unknown".
UNKNOWN = -1


@flax.struct.dataclass
class Queue:
  """A ring buffer of `K` unit-norm keys.

  Attributes:
    keys: `[K, d]` keys, L2-normalised, in the queue dtype.
    valid: `[K]` bool, True for rows that may serve as negatives (written
      rows; every row when the queue was initialised with random keys).
    ptr: int32 scalar, the row where the next batch is written; it is also the
      oldest row once the queue is full.
    count: int32 scalar, the number of keys enqueued so far (it counts past
      `K`; int32 wraps after 2**31 keys).
    metadata: dict name -> `[K, ...]` int32 per-row metadata, -1 if unknown.
  """

  keys: Array
  valid: Array
  ptr: Array
  count: Array
  metadata: dict[str, Array]

  @property
  def size(self) -> int:
    """K, the number of rows."""
    return self.keys.shape[0]

  @property
  def dim(self) -> int:
    """d, the key dimension."""
    return self.keys.shape[1]


def _metadata_shapes(
    metadata: Sequence[str] | Mapping[str, Sequence[int]] | None,
) -> dict[str, tuple[int, ...]]:
  if metadata is None:
    return {}
  if isinstance(metadata, str):
    raise ValueError(
        "metadata must be a sequence of names or a dict name -> trailing"
        f" shape, got the string {metadata!r}; write ({metadata!r},)."
    )
  if isinstance(metadata, Mapping):
    return {name: tuple(shape) for name, shape in metadata.items()}
  return {name: () for name in metadata}


def init_queue(
    size: int,
    dim: int,
    *,
    dtype: Any = jnp.float32,
    rng: Array | None = None,
    metadata: Sequence[str] | Mapping[str, Sequence[int]] | None = None,
) -> Queue:
  """Creates an empty MoCo queue.

  Args:
    size: K, the number of keys held (MoCo: 65,536; CIFAR demo: 4,096). It
      must be a multiple of the global batch size used with `enqueue`.
    dim: d, the key dimension.
    dtype: the storage dtype of the keys (float32 or bfloat16).
    rng: if given, the queue starts full of random unit vectors, all valid, as
      in MoCo's reference code (`randn` then normalise). If None, keys start at
      zero and `valid` is False until a row is written, so an unfilled row is
      never used as a negative.
    metadata: optional per-row integer metadata: a sequence of names (each a
      `[K]` int32 array), or a dict name -> trailing shape, e.g.
      `{'cluster': (num_stages,)}` for `[K, num_stages]` (MCL). Filled with -1.

  Returns:
    A `Queue` with `ptr = count = 0`.

  Example:
    >>> queue = init_queue(4096, 128, metadata=('label',))
    >>> queue = enqueue(queue, keys, label=labels)  # keys [512, 128]
  """
  if size < 1 or dim < 1:
    raise ValueError(f"size and dim must be >= 1, got size={size}, dim={dim}.")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"dtype must be a floating dtype, got {dtype}.")
  shapes = _metadata_shapes(metadata)
  if rng is None:
    keys = jnp.zeros((size, dim), dtype)
    valid = jnp.zeros((size,), bool)
  else:
    keys = checks.l2_normalize(
        jax.random.normal(rng, (size, dim))).astype(dtype)
    valid = jnp.ones((size,), bool)
  return Queue(
      keys=keys,
      valid=valid,
      ptr=jnp.zeros((), jnp.int32),
      count=jnp.zeros((), jnp.int32),
      metadata={
          name: jnp.full((size, *shape), UNKNOWN, jnp.int32)
          for name, shape in shapes.items()
      },
  )


def enqueue(queue: Queue, keys: Array, **metadata: Array) -> Queue:
  """Writes a batch of keys over the oldest rows (FIFO), with their metadata.

  Keys are L2-normalised in float32, cast to the queue dtype and detached
  (`stop_gradient`): the queue holds momentum-encoder outputs, never a path
  for gradients.

  Args:
    queue: the current queue, `K` rows.
    keys: `[b, d]` the global batch of keys; `K` must be a multiple of `b` so
      a batch never wraps around the end of the buffer.
    **metadata: one `[b, ...]` integer array per metadata name of the queue
      (all of them, no others).

  Returns:
    The new queue: rows `[ptr, ptr + b)` replaced, `ptr` advanced by `b`
    modulo `K`, `count` increased by `b`, those rows marked valid.

  Example:
    >>> queue = jax.jit(enqueue)(queue, keys, label=labels)
  """
  checks.check_rank("keys", keys, 2, "[b, d]: the keys of one batch")
  b, d = keys.shape
  if d != queue.dim:
    raise ValueError(
        f"keys have dimension d={d}, the queue holds d={queue.dim}."
    )
  if queue.size % b:
    raise ValueError(
        f"queue size K={queue.size} must be a multiple of the global batch"
        f" size b={b}; choose K = m*b."
    )
  expected, given = set(queue.metadata), set(metadata)
  if expected != given:
    raise ValueError(
        f"enqueue needs exactly the queue's metadata {sorted(expected)}, got"
        f" {sorted(given)}."
    )
  new_metadata = {}
  for name, value in metadata.items():
    value = jnp.asarray(value)
    want = (b, *queue.metadata[name].shape[1:])
    if value.shape != want:
      raise ValueError(
          f"metadata {name!r} must have shape {want}, got {value.shape}."
      )
    if not jnp.issubdtype(value.dtype, jnp.integer):
      raise ValueError(
          f"metadata {name!r} must be integer, got dtype {value.dtype}."
      )
    start = (queue.ptr,) + (0,) * (value.ndim - 1)
    new_metadata[name] = jax.lax.dynamic_update_slice(
        queue.metadata[name], value.astype(jnp.int32), start
    )
  keys = jax.lax.stop_gradient(checks.l2_normalize(keys)).astype(
      queue.keys.dtype)
  return queue.replace(
      keys=jax.lax.dynamic_update_slice(queue.keys, keys, (queue.ptr, 0)),
      valid=jax.lax.dynamic_update_slice(
          queue.valid, jnp.ones((b,), bool), (queue.ptr,)
      ),
      ptr=(queue.ptr + b) % queue.size,
      count=queue.count + b,
      metadata=new_metadata,
  )


def queue_negative_mask(queue: Queue, num_anchors: int | None = None) -> Array:
  """The rows that may be used as negatives: `queue.valid`.

  Args:
    queue: the queue.
    num_anchors: if given, n: the mask is broadcast to `[n, K]`, the shape the
      losses' `negative_mask` takes in queue mode.

  Returns:
    `[K]` bool, or `[n, K]` with `num_anchors`.

  Example:
    >>> mask = queue_negative_mask(queue, num_anchors=q.shape[0])
    >>> mask = mask & exclude_same_label(labels, queue.metadata['label'])
  """
  if num_anchors is None:
    return queue.valid
  return jnp.broadcast_to(queue.valid, (num_anchors, queue.size))


def ordered_rows(queue: Queue, rows: Array) -> Array:
  """Reorders any `[K, ...]` per-row array of `queue` from oldest to newest."""
  return jnp.roll(rows, -queue.ptr, axis=0)


def ordered_keys(queue: Queue) -> Array:
  """`[K, d]` keys from the oldest row to the newest one (tests, debugging).

  Row `ptr` is the next to be overwritten, hence the oldest: the result is the
  buffer rotated to start there. While the queue is not yet full, its first
  `K - count` rows are the never-written (zero or random-init) rows.
  """
  return ordered_rows(queue, queue.keys)


def ordered_metadata(queue: Queue) -> dict[str, Array]:
  """The metadata arrays, oldest row first (the order of `ordered_keys`)."""
  return {name: ordered_rows(queue, v) for name, v in queue.metadata.items()}
