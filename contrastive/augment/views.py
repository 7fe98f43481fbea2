"""Batched views: vmap a per-example augmentation over a batch, per view."""
from __future__ import annotations

from typing import Callable, Union

import jax
import jax.numpy as jnp

from contrastive.augment import _util
from contrastive.augment.presets import Augment

Array = jax.Array
AugmentLike = Union[Augment, Callable[[Array, Array], Array]]

# The batch layout each modality's pipeline expects (checked up front, so a
# wrong rank fails before any work with an error naming the layout).
_BATCH_LAYOUTS = {
    "image": ("B", "H", "W", "C"),
    "audio": ("B", "T"),
    "sensor": ("B", "T", "C"),
}


def make_views(
    rng: Array,
    batch_x: Array,
    augment: AugmentLike,
    num_views: int = 2,
) -> Array:
  """Augments a batch `num_views` times, with independent randomness.

  Every example of every view gets its own key, split from `rng`, so the
  result is a pure function of `rng` and `batch_x` and can run inside the
  jitted train step. View `v` uses `augment.view_fn(v)`, so asymmetric
  recipes (BYOL) give each view its own parameters, cycling when
  `num_views` exceeds the number of distinct views.

  Args:
    rng: PRNG key.
    batch_x: `[B, ...]` raw batch (e.g. uint8 `[B, H, W, C]` images, `[B, T]`
      waveforms or `[B, T, C]` IMU windows), or, for an image recipe with
      `crop_on='host'`, `[B, V, h, w, C]` views cropped on the host.
    augment: an `Augment` from `build_augment`, or any per-example
      `fn(rng, x) -> x`.
    num_views: number of views, >= 1.

  Returns:
    `[num_views, B, ...]`, the per-example output shape of `augment`.

  Example:
    >>> augment = build_augment({"name": "simclr"})
    >>> views = jax.jit(make_views, static_argnums=(2, 3))(
    ...     rng, images, augment, 2)
    >>> views.shape  # (2, B, 32, 32, 3)
  """
  _util.check_int("num_views", num_views, 1)
  if jnp.ndim(batch_x) < 1:
    raise ValueError(
        f"batch_x must be a batch [B, ...], got shape {jnp.shape(batch_x)}."
    )
  # Views cropped on the host (`crop_on='host'`): [B, V, h, w, C], view v
  # of each example in batch_x[:, v]. A plain [B, h, w, C] batch (already
  # at the view size) is then the same image for every view.
  host_views = (isinstance(augment, Augment) and augment.modality == "image"
                and augment.crop_on == "host" and jnp.ndim(batch_x) == 5)
  if host_views and jnp.shape(batch_x)[1] < num_views:
    raise ValueError(
        f"the batch holds {jnp.shape(batch_x)[1]} host-cropped views per"
        f" example, fewer than num_views={num_views}.")
  if (isinstance(augment, Augment) and augment.modality in _BATCH_LAYOUTS
      and not host_views):
    layout = _BATCH_LAYOUTS[augment.modality]
    if jnp.ndim(batch_x) != len(layout):
      raise ValueError(
          f"the {augment.name!r} ({augment.modality}) augmentation takes"
          f" batches {layout}, got shape {jnp.shape(batch_x)}."
      )
  batch = jnp.shape(batch_x)[0]
  keys = jax.random.split(rng, (num_views, batch))
  if not isinstance(augment, Augment):
    fns = (augment,)
  else:
    fns = augment.view_fns[:num_views]
  # Views that share a function are augmented by one doubly-vmapped call, so
  # the compiled program holds each distinct pipeline once.
  per_fn = []
  if host_views:
    by_view = jnp.moveaxis(jnp.asarray(batch_x), 1, 0)[:num_views]
  for index, fn in enumerate(fns):
    over_batch = jax.vmap(fn)
    if host_views:
      over_views = jax.vmap(over_batch, in_axes=(0, 0))
      per_fn.append(over_views(keys[index::len(fns)],
                               by_view[index::len(fns)]))
    else:
      over_views = jax.vmap(over_batch, in_axes=(0, None))
      per_fn.append(over_views(keys[index::len(fns)], batch_x))
  if len(per_fn) == 1:
    return per_fn[0]
  # Interleave back: view v came from function v % len(fns).
  return jnp.stack([per_fn[v % len(fns)][v // len(fns)]
                    for v in range(num_views)])
