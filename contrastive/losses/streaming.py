"""Log-sum-exp over a large bank of negatives without the `[m, k]` matrix.

The InfoNCE family needs, per anchor `i`, `L_s[i] = log sum_{j allowed}
exp(scale_s * <a_i, b_j>)` over a bank of `k` negatives (a MoCo queue of
65,536 keys, say). Written directly, autodiff keeps the `[m, k]` similarities
and softmax alive for the backward pass (256 MiB each at m = 1024, k = 65,536).
The streamed form is a `jax.custom_vjp`: the forward pass scans the bank in
chunks keeping a running maximum and rescaled sum per anchor (online
log-sum-exp); the backward pass recomputes each chunk's similarities to
accumulate the gradients for the anchors, the bank and the scales. Memory is
`O(m * chunk_size)`; the price is one more matrix product.

Entry `(i, j)` is allowed when the optional bool `mask[i, j]` is True and the
similarity is at least the optional per-anchor `floor[i]` (threshold / top-k
filtering). An anchor with no allowed entry gets `L = -inf` and zero gradient.
`k` need not be a multiple of the chunk size (the bank is padded, masked).
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

Array = jax.Array

# Queue size from which `streaming=None` picks the streamed form. Below it the
# `[m, k]` matrix is small and the dense form is faster.
STREAMING_THRESHOLD = 16384

# Top-k filtering keeps the negatives whose similarity is at least the k-th
# largest minus this margin. The streamed form computes the similarities three
# times (top-k pass, forward, backward); float32 products may differ in the
# last bit between those passes, and without a margin the k-th negative itself
# could drop out. Near-ties within the margin are kept too (in both forms).
TOP_K_TIE_TOLERANCE = 1e-6


class NegativeSums(NamedTuple):
  """What `negative_log_sums` returns, per anchor.

  Attributes:
    log_sums: `[S, m]` log of sum over allowed j of exp(scales[s] * sim_ij);
      -inf for an anchor with no allowed entry. Differentiable.
    sim_mean: `[m]` mean similarity over the allowed entries (0 if none).
    sim_max: `[m]` largest allowed similarity (-inf if none).
    count: `[m]` number of allowed entries, float32.
  The last three carry no gradient.
  """
  log_sums: Array
  sim_mean: Array
  sim_max: Array
  count: Array


def check_chunk_size(chunk_size: int) -> None:
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or (
      chunk_size < 1):
    raise ValueError(
        f"chunk_size must be a positive int (rows of the bank per chunk), got"
        f" {chunk_size!r}."
    )


def check_streaming(streaming: bool | None) -> None:
  if streaming is not None and not isinstance(streaming, bool):
    raise ValueError(
        "streaming must be None (automatic), True or False, got"
        f" {streaming!r}."
    )


def resolve_streaming(streaming: bool | None, num_negatives: int) -> bool:
  """`None` means streamed iff the bank has >= STREAMING_THRESHOLD rows."""
  check_streaming(streaming)
  if streaming is None:
    return num_negatives >= STREAMING_THRESHOLD
  return streaming


def masked_logsumexp(x: Array, allowed: Array | None) -> Array:
  """`log sum exp(x)` over the last axis restricted to `allowed`.

  Rows without an allowed entry give -inf with a zero (not NaN) gradient.
  """
  if allowed is None or allowed is True:
    return jax.nn.logsumexp(x, axis=-1)
  x = jnp.where(allowed, x, -jnp.inf)
  shift = jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
  shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
  total = jnp.sum(jnp.exp(x - shift), axis=-1)
  nonempty = total > 0
  safe_total = jnp.where(nonempty, total, 1.0)
  return jnp.where(nonempty, jnp.log(safe_total) + shift[..., 0], -jnp.inf)


def _allowed(sims: Array, mask: Array | None, floor: Array | None):
  """Bool array of allowed entries, or the constant True if all are."""
  allowed = True if mask is None else mask
  if floor is not None:
    allowed = allowed & (sims >= floor[:, None])
  return allowed


def _stats(sims, allowed):
  """Sum, max and count of the allowed similarities, per anchor."""
  total = jnp.sum(jnp.where(allowed, sims, 0.0), axis=1)
  top = jnp.max(jnp.where(allowed, sims, -jnp.inf), axis=1)
  count = jnp.sum(jnp.broadcast_to(allowed, sims.shape), 1, jnp.float32)
  return total, top, count


def _dense(anchors, bank, scales, mask, floor) -> NegativeSums:
  sims = anchors @ bank.T
  allowed = _allowed(jax.lax.stop_gradient(sims), mask, floor)
  # One [m, k] matrix per scale, not a stacked [S, m, k] one.
  log_sums = jnp.stack([masked_logsumexp(scales[s] * sims, allowed)
                        for s in range(scales.shape[0])])
  total, top, count = _stats(jax.lax.stop_gradient(sims), allowed)
  return NegativeSums(log_sums, total / jnp.maximum(count, 1.0), top, count)


class _Layout(NamedTuple):
  """Static chunking of a bank of `rows` rows into `num` chunks of `size`."""
  rows: int
  size: int
  num: int

  @property
  def padded(self) -> bool:
    return self.size * self.num != self.rows


def _layout(rows: int, chunk_size: int) -> _Layout:
  size = min(chunk_size, rows)
  return _Layout(rows, size, math.ceil(rows / size))


def _pad(bank, mask, layout: _Layout):
  extra = layout.size * layout.num - layout.rows
  if extra:
    bank = jnp.pad(bank, ((0, extra), (0, 0)))
    if mask is not None:
      mask = jnp.pad(mask, ((0, 0), (0, extra)))  # pads with False
  return bank, mask


def _chunk(anchors, bank, mask, floor, index, layout: _Layout):
  """Chunk `index` of the padded bank, its similarities and allowed entries."""
  start = index * layout.size
  rows = jax.lax.dynamic_slice_in_dim(bank, start, layout.size, axis=0)
  sims = anchors @ rows.T
  if mask is not None:
    mask = jax.lax.dynamic_slice_in_dim(mask, start, layout.size, axis=1)
  elif layout.padded:
    mask = (start + jnp.arange(layout.size) < layout.rows)[None, :]
  return rows, sims, _allowed(sims, mask, floor)


def _stream_forward(anchors, bank, scales, mask, floor, layout):
  num_scales, m = scales.shape[0], anchors.shape[0]

  def step(carry, index):
    run_max, run_sum, total, top, count = carry
    _, sims, allowed = _chunk(anchors, bank, mask, floor, index, layout)
    chunk_total, chunk_top, chunk_count = _stats(sims, allowed)
    total, count = total + chunk_total, count + chunk_count
    top = jnp.maximum(top, chunk_top)
    new_max, new_sum = [], []
    for s in range(num_scales):  # one [m, c] matrix at a time, not [S, m, c]
      logits = jnp.where(allowed, scales[s] * sims, -jnp.inf)
      peak = jnp.maximum(run_max[s], jnp.max(logits, axis=1))
      shift = jnp.where(jnp.isfinite(peak), peak, 0.0)
      new_sum.append(run_sum[s] * jnp.exp(run_max[s] - shift) + jnp.sum(
          jnp.exp(logits - shift[:, None]), axis=1))
      new_max.append(peak)
    return (tuple(new_max), tuple(new_sum), total, top, count), None

  zeros = jnp.zeros((m,), jnp.float32)
  minus_inf = jnp.full((m,), -jnp.inf, jnp.float32)
  init = ((minus_inf,) * num_scales, (zeros,) * num_scales, zeros, minus_inf,
          zeros)
  (run_max, run_sum, total, top, count), _ = jax.lax.scan(
      step, init, jnp.arange(layout.num))
  # -inf + log(0) = -inf for an anchor without allowed entries.
  log_sums = jnp.stack(run_max) + jnp.log(jnp.stack(run_sum))
  return NegativeSums(log_sums, total / jnp.maximum(count, 1.0), top, count)


def _stream_backward(res, log_sums_ct, chunk_size, needs):
  anchors, bank, scales, mask, floor, log_sums = res
  need_anchors, need_bank, need_scales = needs
  layout = _layout(bank.shape[0], chunk_size)
  bank, mask = _pad(bank, mask, layout)
  safe_log_sums = jnp.where(jnp.isfinite(log_sums), log_sums, 0.0)

  def step(carry, index):
    d_anchors, d_scales = carry
    rows, sims, allowed = _chunk(anchors, bank, mask, floor, index, layout)
    d_sims, d_chunk_scales = 0.0, []
    for s in range(scales.shape[0]):
      # d log_sums[s, i] / d sims[i, j] = scales[s] * softmax_s[i, j].
      logits = jnp.where(allowed, scales[s] * sims, -jnp.inf)
      weighted = log_sums_ct[s][:, None] * jnp.exp(
          logits - safe_log_sums[s][:, None])
      d_sims = d_sims + scales[s] * weighted
      if need_scales:
        d_chunk_scales.append(jnp.sum(weighted * sims))
    if need_scales:
      d_scales = d_scales + jnp.stack(d_chunk_scales)
    if need_anchors:
      d_anchors = d_anchors + d_sims @ rows
    d_rows = d_sims.T @ anchors if need_bank else None
    return (d_anchors, d_scales), d_rows

  init = (jnp.zeros_like(anchors), jnp.zeros_like(scales))
  (d_anchors, d_scales), d_rows = jax.lax.scan(
      step, init, jnp.arange(layout.num))
  d_bank = None
  if need_bank:
    d_bank = d_rows.reshape(-1, bank.shape[1])[: layout.rows]
  return (d_anchors if need_anchors else None, d_bank,
          d_scales if need_scales else None, None, None)


@functools.lru_cache(maxsize=None)
def _streamed_fn(chunk_size: int):
  """The custom-VJP streamed form for one chunk size (cached: one jit cache)."""

  @jax.custom_vjp
  def streamed(anchors, bank, scales, mask, floor):
    layout = _layout(bank.shape[0], chunk_size)
    bank, mask = _pad(bank, mask, layout)
    return _stream_forward(anchors, bank, scales, mask, floor, layout)

  def fwd(anchors, bank, scales, mask, floor):
    needs = tuple(x.perturbed for x in (anchors, bank, scales))
    value = lambda x: None if x is None else x.value
    anchors, bank, scales, mask, floor = map(
        value, (anchors, bank, scales, mask, floor))
    out = streamed(anchors, bank, scales, mask, floor)
    # The static flags travel in the residuals' tree structure (None or ()).
    flags = tuple(() if n else None for n in needs)
    return out, ((anchors, bank, scales, mask, floor, out.log_sums), flags)

  def bwd(saved, cts):
    res, flags = saved
    needs = tuple(f is not None for f in flags)
    log_sums_ct = cts.log_sums
    if isinstance(log_sums_ct, SymbolicZero) or not any(needs):
      return (None,) * 5
    return _stream_backward(res, log_sums_ct, chunk_size, needs)

  streamed.defvjp(fwd, bwd, symbolic_zeros=True)
  return streamed


def negative_log_sums(
    anchors: Array,
    bank: Array,
    scales: Array,
    *,
    mask: Array | None = None,
    floor: Array | None = None,
    streaming: bool = False,
    chunk_size: int = 4096,
) -> NegativeSums:
  """Per-anchor log-sum-exps of scaled similarities to a bank of negatives.

  Args:
    anchors: `[m, d]` float32 anchors (already normalised by the caller).
    bank: `[k, d]` float32 negatives.
    scales: `[S]` multipliers of the similarities, e.g. `[1/t]`, or
      `[(1+beta)/t, beta/t]` for HCL; one log-sum per scale.
    mask: optional `[m, k]` bool, True where `bank[j]` may be used by anchor i.
    floor: optional `[m]`; entries with similarity below `floor[i]` are left
      out (threshold / top-k filtering; no gradient through the selection).
    streaming: use the chunked custom-VJP form (same values and gradients).
    chunk_size: bank rows per chunk of the streamed form.

  Returns:
    A `NegativeSums`; only `log_sums` is differentiable (w.r.t. anchors, bank
    and scales). The streamed form supports reverse mode (`jax.grad`,
    `jax.vjp`) but not forward mode (`jax.jvp`, `jax.jacfwd`), being a
    `custom_vjp`.

  Example:
    >>> q = jnp.eye(4, 8)
    >>> queue = jax.random.normal(jax.random.key(0), (100, 8))
    >>> queue /= jnp.linalg.norm(queue, axis=1, keepdims=True)
    >>> out = negative_log_sums(q, queue, jnp.array([1 / 0.2]), streaming=True,
    ...                         chunk_size=32)
    >>> out.log_sums.shape
    (1, 4)
  """
  check_chunk_size(chunk_size)
  scales = jnp.asarray(scales, jnp.float32).reshape(-1)
  if not streaming:
    return _dense(anchors, bank, scales, mask, floor)
  if floor is not None:
    floor = jax.lax.stop_gradient(floor)
  out = _streamed_fn(chunk_size)(anchors, bank, scales, mask, floor)
  return NegativeSums(
      out.log_sums, *jax.lax.stop_gradient(
          (out.sim_mean, out.sim_max, out.count)))


def kth_largest_similarity(
    anchors: Array,
    bank: Array,
    k: int,
    *,
    mask: Array | None = None,
    streaming: bool = False,
    chunk_size: int = 4096,
) -> Array:
  """`[m]` k-th largest allowed similarity per anchor (no gradient).

  -inf where an anchor has fewer than `k` allowed entries, so that a floor
  built from it keeps all of them. The streamed form keeps a running top-k
  while scanning the bank in chunks.
  """
  anchors, bank = jax.lax.stop_gradient((anchors, bank))
  if not streaming:
    sims = anchors @ bank.T
    if mask is not None:
      sims = jnp.where(mask, sims, -jnp.inf)
    return jax.lax.top_k(sims, k)[0][:, k - 1]
  check_chunk_size(chunk_size)
  layout = _layout(bank.shape[0], chunk_size)
  bank, mask = _pad(bank, mask, layout)

  def step(best, index):
    _, sims, allowed = _chunk(anchors, bank, mask, None, index, layout)
    sims = jnp.where(allowed, sims, -jnp.inf)
    return jax.lax.top_k(jnp.concatenate([best, sims], axis=1), k)[0], None

  init = jnp.full((anchors.shape[0], k), -jnp.inf, jnp.float32)
  best, _ = jax.lax.scan(step, init, jnp.arange(layout.num))
  return best[:, k - 1]
