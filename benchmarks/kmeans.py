"""JAX k-means (contrastive.negatives.kmeans) against scikit-learn's KMeans.

Like-for-like: Euclidean Lloyd, one initialisation, the same number of
iterations (`tol=0`, so both stop only at a fixed point or after `--iters`),
on a seeded mixture of Gaussians. Two comparisons:

- same init: both start from the same k-means++ centroids (computed by the
  JAX seeding), so the runs should coincide and the time is Lloyd alone;
- own init: each library seeds itself (greedy k-means++ in both) and the time
  includes the seeding.

JAX times are steady-state (best of `--repeats` calls after a first call that
compiles); the compile time is the first call minus the steady time. The
spherical mode is timed too (there is no scikit-learn counterpart).

  python -m benchmarks.kmeans            # 100,000 x 128, k = 100
  python -m benchmarks.kmeans --quick    # 10,000 x 32, k = 20
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from contrastive.negatives import kmeans as km


def mixture(seed: int, n: int, d: int, components: int) -> np.ndarray:
  """A seeded mixture of isotropic Gaussians with overlapping components."""
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(components, d))
  labels = rng.integers(0, components, n)
  return (centers[labels] + 0.7 * rng.normal(size=(n, d))).astype(np.float32)


def best_time(fn, repeats: int):
  """(best wall time of `repeats` calls, the last result)."""
  best, out = np.inf, None
  for _ in range(repeats):
    start = time.perf_counter()
    out = fn()
    best = min(best, time.perf_counter() - start)
  return best, out


def time_jax(fn, repeats: int):
  """(first call incl. compile, best steady call, result) of a JAX call."""
  start = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - start
  steady, out = best_time(lambda: jax.block_until_ready(fn()), repeats)
  return first, steady, out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="a small, fast run")
  parser.add_argument("--n", type=int, default=100_000)
  parser.add_argument("--d", type=int, default=128)
  parser.add_argument("--k", type=int, default=100)
  parser.add_argument("--iters", type=int, default=30)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--chunk-size", type=int, default=4096)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  if args.quick:
    args.n, args.d, args.k, args.iters = 10_000, 32, 20, 10

  x = mixture(args.seed, args.n, args.d, args.k)
  xj = jax.device_put(x)
  rng = jax.random.key(args.seed)
  print(f"N={args.n} d={args.d} k={args.k} iters<={args.iters} tol=0 "
        f"chunk={args.chunk_size} | jax {jax.__version__} on "
        f"{jax.devices()[0].platform}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}")

  seed_first, seed_time, init = time_jax(
      lambda: km.kmeans_plus_plus(rng, xj, args.k, spherical=False),
      args.repeats,
  )
  init_np = np.asarray(init)
  rows = []

  def run_jax(name, **kw):
    first, steady, res = time_jax(
        lambda: km.kmeans(rng, xj, args.k, num_iters=args.iters, tol=0.0,
                          chunk_size=args.chunk_size, **kw),
        args.repeats,
    )
    rows.append((name, steady, first - steady, int(res.num_iters),
                 float(res.inertia)))
    return res

  def run_sklearn(name, init):
    def fit():
      # Single-threaded BLAS: scikit-learn's Lloyd loop sets this itself (it
      # parallelises with OpenMP); its k-means++ does not, and on a busy
      # 2-core machine multi-threaded OpenBLAS made the seeding 20x slower.
      with threadpool_limits(limits=1, user_api="blas"):
        return KMeans(args.k, init=init, n_init=1, max_iter=args.iters,
                      tol=0.0, algorithm="lloyd",
                      random_state=args.seed).fit(x)
    steady, res = best_time(fit, args.repeats)
    rows.append((name, steady, None, int(res.n_iter_), float(res.inertia_)))
    return res

  same_j = run_jax("jax  euclid, same init", init=init_np, spherical=False)
  same_s = run_sklearn("sklearn      same init", init_np)
  own_j = run_jax("jax  euclid, own k-means++", spherical=False)
  own_s = run_sklearn("sklearn      own k-means++", "k-means++")
  run_jax("jax  spherical, own k-means++", spherical=True)

  print(f"\nJAX k-means++ seeding alone: {seed_time:.3f} s "
        f"(first call {seed_first:.3f} s)\n")
  header = (f"{'run':32s} {'time s':>8s} {'s/iter':>8s} {'compile s':>10s}"
            f" {'iters':>6s} {'inertia':>14s}")
  print(header)
  print("-" * len(header))
  for name, t, compile_t, iters, inertia in rows:
    c = f"{compile_t:10.2f}" if compile_t is not None else f"{'-':>10s}"
    print(f"{name:32s} {t:8.3f} {t / max(iters, 1):8.4f} {c} {iters:6d}"
          f" {inertia:14.6g}")

  print("(own k-means++ rows include the seeding in time and s/iter)")
  agree = np.mean(np.asarray(same_j.assignments) == same_s.labels_)
  print(f"\nsame init: inertia ratio jax/sklearn = "
        f"{float(same_j.inertia) / same_s.inertia_:.5f}, identical assignments "
        f"{100 * agree:.2f} %, speed-up sklearn/jax = "
        f"{rows[1][1] / rows[0][1]:.2f}x")
  print(f"own init:  inertia ratio jax/sklearn = "
        f"{float(own_j.inertia) / own_s.inertia_:.5f}, "
        f"speed-up sklearn/jax = {rows[3][1] / rows[2][1]:.2f}x")
  print(f"load average at the end: {os.getloadavg()[0]:.1f} (timings of"
        " both libraries suffer alike when other processes share the CPUs)")


if __name__ == "__main__":
  main()
