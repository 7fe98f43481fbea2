"""The device mesh and the sharding rules, both chosen by the config.

The train step is one `jax.jit` program over the *global* batch: the batch is
split along the mesh's `data` axis, large kernels may be split along its
`model` axis, and everything else is replicated. Because the program is
global, SimCLR-style losses see every device's embeddings (XLA inserts the
all-gathers, and their transposes give the correct gradients), BatchNorm
statistics are global, and the MoCo queue receives the keys of the global
batch in one fixed order whatever the number of devices or hosts.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"
MODEL_AXIS = "model"


def make_mesh(shape: Sequence[int], devices: Sequence[Any] | None = None) -> Mesh:
  """A `(data, model)` mesh; one entry of `shape` may be -1 (all the rest).

  Example: `make_mesh((-1, 1))` is pure data parallelism over every device;
  `make_mesh((4, 2))` on 8 devices also splits large kernels in two.
  """
  devices = list(jax.devices() if devices is None else devices)
  shape = [int(s) for s in shape]
  if len(shape) != 2:
    raise ValueError(
        f"mesh shape must have two entries (data, model), got {tuple(shape)}."
    )
  if shape.count(-1) > 1:
    raise ValueError(f"at most one mesh dimension may be -1, got {tuple(shape)}.")
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if len(devices) % known:
      raise ValueError(
          f"mesh shape {tuple(shape)} does not divide {len(devices)} devices."
      )
    shape[shape.index(-1)] = len(devices) // known
  if math.prod(shape) != len(devices):
    raise ValueError(
        f"mesh shape {tuple(shape)} needs {math.prod(shape)} devices, but"
        f" {len(devices)} are available; use -1 for one dimension."
    )
  # Auto axes: XLA's partitioner propagates shardings through the step, so the
  # model code needs no sharding annotations of its own.
  return jax.make_mesh(
      tuple(shape), (DATA_AXIS, MODEL_AXIS),
      axis_types=(AxisType.Auto, AxisType.Auto), devices=devices,
  )


def batch_sharding(mesh: Mesh, *, stacked: bool = False) -> NamedSharding:
  """Examples split over the `data` axis: the leading dimension, or the
  second one of a population's `stacked` batches `[members, b, ...]`."""
  return NamedSharding(mesh, P(None, DATA_AXIS) if stacked else P(DATA_AXIS))


def stacked_shardings(shardings: Any) -> Any:
  """The shardings of a population's stacked pytree: each member's sharding
  with a replicated leading (member) dimension."""
  return jax.tree.map(
      lambda s: NamedSharding(s.mesh, P(None, *s.spec)), shardings,
      is_leaf=lambda x: isinstance(x, NamedSharding))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def param_spec(shape: Sequence[int], model_size: int, min_size: int) -> P:
  """Splits a kernel's output dimension over `model` when that pays off.

  A kernel (rank >= 2) with at least `min_size` elements whose last dimension
  divides evenly is split along it; small tensors, biases and norms stay
  replicated, since splitting them costs more in communication than it saves.
  """
  if (
      model_size > 1
      and len(shape) >= 2
      and math.prod(shape) >= min_size
      and shape[-1] % model_size == 0
  ):
    return P(*([None] * (len(shape) - 1)), MODEL_AXIS)
  return P()


def tree_shardings(tree: Any, mesh: Mesh, min_size: int) -> Any:
  """NamedShardings for a pytree of arrays (or ShapeDtypeStructs)."""
  model_size = mesh.shape[MODEL_AXIS]
  return jax.tree.map(
      lambda x: NamedSharding(mesh, param_spec(np.shape(x), model_size, min_size)),
      tree,
  )


def global_batch(local_batch: Any, mesh: Mesh, *, stacked: bool = False
                 ) -> Any:
  """Assembles each process's slice of the batch into global arrays.

  Process p holds rows [p * b, (p + 1) * b) of the global batch (the data
  iterator guarantees that order), so the global array is the same whatever
  the number of processes. `stacked`: a population's batches `[members,
  b, ...]`, split along their second dimension.
  """
  sharding = batch_sharding(mesh, stacked=stacked)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
      local_batch,
  )
