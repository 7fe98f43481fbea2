"""Train-step throughput per modality, at 1 and 8 devices, against PyTorch.

Run from the repository root:

    python -m benchmarks.train_step                       # all, 1 and 8 devices
    python -m benchmarks.train_step --quick               # batch 32, 2 steps
    python -m benchmarks.train_step --modality image --method simclr \
        --devices 1 --reference torch                     # side by side
    python -m benchmarks.train_step --devices 1 --reference torch \
        --compiler both                                   # before / after
    python -m benchmarks.train_step --dtype bfloat16      # opt-in bf16 compute
    python -m benchmarks.train_step --xla_flags=--xla_cpu_use_onednn=true
    python -m benchmarks.train_step --profile_dir /tmp/prof  # top XLA ops
    benchmarks/gpu.sh                                     # on an NVIDIA GPU

Each modality's default dataset and full-size encoder come from
configs/<method>.py (fashion_mnist: ResNet-18 small-image stem, width 64;
fsdd: log-mel audio CNN, width 32, depth 4; uci_hapt: 1-D sensor ResNet,
width 64, depth 3; projection head 512-128; LARS), built with the experiment
API; MoCo uses a 4,096-key queue. Every measurement runs in its own
subprocess: XLA_FLAGS (`--xla_force_host_platform_device_count=N` for N
simulated devices, plus `--xla_flags`) must be set before jax is imported,
and a fresh process gives each framework its own peak-memory figure.

Timing: the compiled step (`jit(...).lower().compile()`, state donated) runs
`--warmup` times, then `--steps` times, each ended by `block_until_ready`;
the median is reported. Ours augments the two views inside the step, from
the real dataset's batch; torch gets ready-made views (as its DataLoader
workers would make them), so the comparison, if anything, favours torch.

Memory: `rss` is the process's peak resident set (getrusage ru_maxrss; for
JAX it includes compilation); `xla` is the compiled step's
`memory_analysis()` (arguments + outputs + temporaries - aliased donations),
which torch has no equivalent of; `dev` is the accelerator's peak
(`memory_stats()['peak_bytes_in_use']`, torch.cuda.max_memory_allocated) on
a GPU. FLOPs per step are XLA's
`cost_analysis()` of our lowered (global, unpartitioned) step, the useful
work whatever the device count; torch's rate uses the same count, and
`--peak_tflops` turns the rate into model FLOP utilisation (MFU).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from typing import Any

# modality -> (dataset, one example's shape in the project's layout).
MODALITIES = {
    "image": ("fashion_mnist", (28, 28, 1)),
    "audio": ("fsdd", (8000,)),
    "sensor": ("uci_hapt", (128, 6)),
}
METHODS = ("simclr", "moco")
QUEUE_SIZE = 4096
DEFAULT_BATCH = 256
_RESULT = "RESULT "
_COMPILER_NOTE = {
    "config": "the config's settings: config.compiler and the encoders'"
              " conv_backward and bn_sums (jax rows)",
    "xla_defaults": "XLA's defaults, plain convolution VJPs and reduced"
                    " BatchNorm sums (jax-d rows)",
    "both": "the config's settings (jax rows) and XLA's defaults with plain"
            " convolution VJPs and reduced BatchNorm sums (jax-d rows)",
}


def _config(modality: str, method: str, batch_size: int, dtype: str,
            compiler: str = "config"):
  from configs import moco, simclr  # pylint: disable=import-outside-toplevel
  module = {"simclr": simclr, "moco": moco}[method]
  config = module.get_config(MODALITIES[modality][0])
  config.train.batch_size = batch_size
  config.model.dtype = dtype
  config.moco.queue_size = QUEUE_SIZE
  if compiler == "xla_defaults":  # the step as XLA compiles it unprompted
    config.compiler = {}
    config.model.conv_backward = "xla"
    config.model.bn_sums = "reduce"
  return config


def _peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_calls(run, warmup: int, steps: int
               ) -> tuple[list[float], list[float]]:
  """Wall and process CPU (user + system, all threads) seconds per call."""
  for _ in range(warmup):
    run()
  wall, cpu = [], []
  for _ in range(steps):
    start, start_cpu = time.perf_counter(), time.process_time()
    run()
    wall.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
  return wall, cpu


def _profile_summary(trace_dir: str, top: int = 12) -> list[str]:
  """The XLA ops taking the most time in a `jax.profiler` trace."""
  import glob  # pylint: disable=import-outside-toplevel
  from jax.profiler import ProfileData  # pylint: disable=import-outside-toplevel
  total = Counter()
  for path in glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"),
                        recursive=True):
    for plane in ProfileData.from_file(path).planes:
      for line in plane.lines:
        if line.name == "python":
          continue
        for event in line.events:
          name = event.name
          if name.startswith(("ThreadpoolListener", "end:", "ThunkExecutor")):
            continue
          total[name] += event.duration_ns
  whole = sum(total.values()) or 1
  return [f"{ns / 1e6:9.1f} ms {100 * ns / whole:5.1f}%  {name}"
          for name, ns in total.most_common(top)]


def run_jax(args) -> dict[str, Any]:
  """One measurement of our compiled train step (in a worker process)."""
  import jax  # pylint: disable=import-outside-toplevel
  from contrastive.models import param_count  # pylint: disable=import-outside-toplevel
  from contrastive.train import experiment as exp_lib  # pylint: disable=import-outside-toplevel
  from contrastive.train import mesh as mesh_lib  # pylint: disable=import-outside-toplevel

  config = _config(args.modality, args.method, args.batch_size, args.dtype,
                   args.compiler)
  exp = exp_lib.build_experiment(config)
  state, shardings = exp_lib.init_state(exp)
  batch = mesh_lib.global_batch(next(exp.train_iterator()), exp.mesh)
  expected = MODALITIES[args.modality][1]
  if tuple(batch["x"].shape[1:]) != expected:
    raise ValueError(f"{args.modality} examples are {batch['x'].shape[1:]},"
                     f" the torch twin assumes {expected}.")
  start = time.perf_counter()
  lowered = exp_lib.compile_train_step(exp, shardings).lower(state, batch)
  # The global program's FLOPs, before partitioning: the useful work of one
  # step whatever the number of devices.
  cost = lowered.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  mem = compiled.memory_analysis()
  xla_bytes = (mem.argument_size_in_bytes + mem.output_size_in_bytes
               + mem.temp_size_in_bytes - mem.alias_size_in_bytes)
  holder = {"state": state}

  def run():
    holder["state"], metrics = compiled(holder["state"], batch)
    jax.block_until_ready(metrics)

  profile = []
  if args.profile_dir:
    run()
    with jax.profiler.trace(args.profile_dir):
      run()
    profile = _profile_summary(args.profile_dir)
  times, cpu_times = time_calls(run, args.warmup, args.steps)
  stats = jax.local_devices()[0].memory_stats() or {}
  return {"framework": "jax" if args.compiler == "config" else "jax-d",
          "devices": jax.device_count(),
          "platform": jax.default_backend(), "times": times,
          "cpu_times": cpu_times,
          "compile_s": compile_s, "flops": float(cost.get("flops", 0.0)),
          "params": param_count(holder["state"].params),
          "xla_mib": xla_bytes / 2**20, "rss_mib": _peak_rss_mib(),
          "dev_mib": stats.get("peak_bytes_in_use", 0) / 2**20,
          "profile": profile}


def run_torch(args) -> dict[str, Any]:
  """One measurement of the PyTorch twin (in a worker process)."""
  import torch  # pylint: disable=import-outside-toplevel
  from benchmarks.torch_reference import models  # pylint: disable=import-outside-toplevel
  from benchmarks.torch_reference import step as step_lib  # pylint: disable=import-outside-toplevel

  if args.dtype != "float32":
    raise ValueError("the torch reference runs in float32 only.")
  torch.set_num_threads(os.cpu_count() or 1)
  cuda = args.torch_device == "cuda"
  if cuda:
    # JAX's default float32 matmuls and convolutions on recent NVIDIA GPUs
    # use TF32; torch's convolutions do too, its matmuls only with this.
    torch.set_float32_matmul_precision("high")
  config = _config(args.modality, args.method, args.batch_size, args.dtype)
  shape = MODALITIES[args.modality][1]
  step, model = step_lib.make_step(
      config.model.to_dict(), shape, method=args.method,
      batch_size=args.batch_size, temperature=config.loss.temperature,
      learning_rate=config.optimizer.learning_rate,
      optimizer=config.optimizer.to_dict(), queue_size=QUEUE_SIZE,
      ema=config.moco.momentum_start, device=args.torch_device)
  views = step_lib.random_views(shape, args.batch_size).to(args.torch_device)
  # float() waits for the step, on a GPU too.
  times, cpu_times = time_calls(lambda: float(step(views)), args.warmup,
                                args.steps)
  return {"framework": "torch", "devices": 1,
          "platform": args.torch_device, "times": times,
          "cpu_times": cpu_times,
          "params": models.param_count(model),
          "threads": torch.get_num_threads(), "rss_mib": _peak_rss_mib(),
          "dev_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0}


def _spawn(args, framework: str, devices: int, modality: str, method: str,
           compiler: str = "config") -> dict[str, Any]:
  env = dict(os.environ)
  flags = [f"--xla_force_host_platform_device_count={devices}"]
  if args.xla_flags:
    flags.append(args.xla_flags)
  env["XLA_FLAGS"] = " ".join(flags)
  cmd = [sys.executable, "-m", "benchmarks.train_step", "--worker", framework,
         "--modality", modality, "--method", method,
         "--batch_size", str(args.batch_size), "--steps", str(args.steps),
         "--warmup", str(args.warmup), "--dtype", args.dtype,
         "--torch_device", args.torch_device, "--compiler", compiler]
  if args.profile_dir and framework == "jax":
    cmd += ["--profile_dir", os.path.join(args.profile_dir,
                                          f"{modality}_{method}_{devices}")]
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                        check=False)
  for line in proc.stdout.splitlines():
    if line.startswith(_RESULT):
      return json.loads(line[len(_RESULT):])
  raise RuntimeError(f"worker {' '.join(cmd[3:])} failed:\n{proc.stderr}")


def _row(modality, method, r, batch: int, flops: float | None,
         peak_tflops: float) -> str:
  step_s = statistics.median(r["times"])
  rate = f"{flops / step_s / 1e9:>7.1f}" if flops else f"{'-':>7}"
  mfu = ""
  if peak_tflops:
    mfu = (f" {100 * flops / step_s / (peak_tflops * 1e12):>5.1f}%" if flops
           else f" {'-':>6}")
  xla = f"{r['xla_mib']:>7.0f}" if "xla_mib" in r else f"{'-':>7}"
  dev = f"{r['dev_mib']:>7.0f}" if r.get("dev_mib") else f"{'-':>7}"
  cpu = statistics.median(r["cpu_times"])
  return (f"{modality:<7} {method:<7} {r['framework']:<6} {r['devices']:>3}"
          f" {batch:>5} {step_s * 1e3:>9.0f} {cpu:>7.1f} {1 / step_s:>8.3f}"
          f" {batch / step_s:>8.1f} {rate}{mfu} {r['rss_mib']:>7.0f} {xla}"
          f" {dev} {r['params']:>10,}  {os.getloadavg()[0]:.1f}")


def _parse(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--modality", default="all",
                      choices=("all",) + tuple(MODALITIES))
  parser.add_argument("--method", default="all", choices=("all",) + METHODS)
  parser.add_argument("--devices", default="1,8",
                      help="comma-separated simulated CPU device counts")
  parser.add_argument("--batch_size", type=int, default=None,
                      help=f"global batch (default {DEFAULT_BATCH}, quick 32)")
  parser.add_argument("--steps", type=int, default=None,
                      help="timed steps (default 5, quick 2)")
  parser.add_argument("--warmup", type=int, default=1,
                      help="untimed steps after compilation")
  parser.add_argument("--reference", default="none", choices=("none", "torch"))
  parser.add_argument("--dtype", default="float32",
                      choices=("float32", "bfloat16"),
                      help="our model's compute dtype (params stay float32)")
  parser.add_argument("--xla_flags", default="",
                      help="extra XLA_FLAGS for our workers")
  parser.add_argument("--compiler", default="config",
                      choices=("config", "xla_defaults", "both"),
                      help="our step as configured (config.compiler, the"
                      " encoders' conv_backward and bn_sums), with XLA's"
                      " defaults, plain convolution VJPs and reduced"
                      " BatchNorm sums ('jax-d' rows), or both side by side"
                      " at 1 device (before / after)")
  parser.add_argument("--profile_dir", default="",
                      help="trace one step of ours here; print the top ops")
  parser.add_argument("--torch_device", default="cpu", choices=("cpu", "cuda"))
  parser.add_argument("--peak_tflops", type=float, default=0.0,
                      help="the device's peak, to print MFU (model FLOPs"
                      " utilisation); 0 leaves it out")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--worker", choices=("jax", "torch"),
                      help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  args.batch_size = args.batch_size or (32 if args.quick else DEFAULT_BATCH)
  args.steps = args.steps or (2 if args.quick else 5)
  if args.batch_size <= 0 or QUEUE_SIZE % args.batch_size:
    raise ValueError(f"--batch_size must divide the MoCo queue ({QUEUE_SIZE}),"
                     f" got {args.batch_size}.")
  return args


def main(argv=None) -> None:
  args = _parse(argv)
  if args.worker:
    run = run_jax if args.worker == "jax" else run_torch
    print(_RESULT + json.dumps(run(args)), flush=True)
    return
  modalities = list(MODALITIES) if args.modality == "all" else [args.modality]
  methods = list(METHODS) if args.method == "all" else [args.method]
  devices = [int(d) for d in args.devices.split(",") if d]
  print(f"{os.cpu_count()} CPU cores; batch {args.batch_size}; median of"
        f" {args.steps} steps after {args.warmup} warm-up; dtype {args.dtype};"
        f" XLA_FLAGS extra: {args.xla_flags or '(none)'}; our step compiled"
        f" with {_COMPILER_NOTE[args.compiler]}")
  header = (f"{'modal.':<7} {'method':<7} {'fw':<6} {'dev':>3} {'batch':>5}"
            f" {'step ms':>9} {'cpu s':>7} {'steps/s':>8} {'ex/s':>8}"
            f" {'GFLOP/s':>7}"
            + (f" {'MFU':>6}" if args.peak_tflops else "")
            + f" {'rss MiB':>7} {'xla MiB':>7} {'dev MiB':>7} {'params':>10}"
            "  load")
  print(header)
  print("-" * len(header), flush=True)
  ratios, profiles = [], []
  for modality in modalities:
    for method in methods:
      ours, flops = None, None
      for d in devices:
        r = _spawn(args, "jax", d, modality, method,
                   "xla_defaults" if args.compiler == "xla_defaults"
                   else "config")
        flops = flops or r["flops"]
        ours = ours if ours is not None else r
        print(_row(modality, method, r, args.batch_size, r["flops"],
                   args.peak_tflops), flush=True)
        profiles.extend([f"{modality} {method} {d} device(s):"]
                        + r["profile"])
      # Before/after: XLA's own defaults beside the config's options.
      defaults = None
      if args.compiler == "both" and 1 in devices:
        defaults = _spawn(args, "jax", 1, modality, method, "xla_defaults")
        print(_row(modality, method, defaults, args.batch_size, flops,
                   args.peak_tflops), flush=True)
      if args.reference == "torch":
        t = _spawn(args, "torch", 1, modality, method)
        print(_row(modality, method, t, args.batch_size, flops,
                   args.peak_tflops), flush=True)
        for r in (defaults, ours):
          if r is None:
            continue
          ratio = statistics.median(t["times"]) / statistics.median(r["times"])
          cpu_ratio = statistics.median(t["cpu_times"]) / statistics.median(
              r["cpu_times"])
          same = "equal" if t["params"] == r["params"] else "DIFFER"
          ratios.append(f"{modality:<7} {method:<7} {r['framework']:<5}"
                        f" ({r['devices']} dev)/torch = {ratio:.2f} (wall),"
                        f" {cpu_ratio:.2f} (cpu)  params {same}"
                        f" ({r['params']:,} vs {t['params']:,})")
  if ratios:
    print("\nexamples/s ratio, ours / torch (same machine, same run):")
    print("\n".join(ratios))
  if args.profile_dir:
    print("\nour step's top XLA ops (one profiled step, all threads):")
    print("\n".join(profiles))
  print("\ncpu s: process CPU seconds per step (user + system, all"
        " threads): on a loaded machine a steadier measure of the work than"
        " the wall time, though it also counts threads spinning while they"
        " wait.")
  print("rss: peak resident set of the worker process (getrusage); xla:"
        " compiled step's memory_analysis; dev: accelerator peak; GFLOP/s:"
        " XLA's cost_analysis FLOPs of our global step / step time"
        + (f"; MFU against {args.peak_tflops} TFLOP/s" if args.peak_tflops
           else "") + ". load: 1-min load average.")


if __name__ == "__main__":
  main()
