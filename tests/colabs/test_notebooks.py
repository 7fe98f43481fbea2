"""Executes every colab top to bottom with smoke sizes (a broken notebook
fails CI).

Each notebook runs in a fresh kernel started from THIS interpreter (a
temporary kernelspec whose argv is `sys.executable`, first on JUPYTER_PATH),
and a cell appended to the notebook checks that the kernel really is it.
"""
from __future__ import annotations

import json
import os
import pathlib
import sys

import nbclient
import nbformat
import pytest

from configs import ablation as ablation_config
from contrastive.ablation import runner

COLABS = pathlib.Path(__file__).resolve().parents[2] / "colabs"
NOTEBOOKS = ("quickstart.ipynb", "loss_explorer.ipynb",
             "ablation_viewer.ipynb")
KERNEL = "contrastive-test-python"


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
  """A kernelspec for sys.executable, and the kernel's environment."""
  spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
  spec_dir.mkdir(parents=True)
  (spec_dir / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
               "{connection_file}"],
      "display_name": "contrastive tests", "language": "python"}))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  env = dict(os.environ, CONTRASTIVE_COLAB_SMOKE="1",
             CONTRASTIVE_EXPECTED_PYTHON=sys.executable)
  # One CPU device in the kernel (conftest simulates 8 for the test process):
  # the notebooks then compile single-device programs, as on Colab.
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(flags)
  if not flags:
    del env["XLA_FLAGS"]
  return env


def _fake_train(config, workdir):
  """A stand-in trainer for the viewer's results folder: writes what the
  real one writes (metrics.jsonl, results.json) and a histogram."""
  os.makedirs(workdir, exist_ok=True)
  seed, steps = int(config.seed), 5
  offset = {"simclr": 0.0, "supcon": 0.1}.get(config.loss.name, -0.1)
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    for step in range(1, steps + 1):
      f.write(json.dumps({"step": step, "loss": 5.0 / step,
                          "pos_sim": 0.5 + 0.05 * step,
                          "neg_sim": 0.2 - 0.02 * step}) + "\n")
  results = {"knn_accuracy": 0.6 + offset + 0.01 * seed,
             "linear_probe_accuracy": 0.65 + offset + 0.01 * seed,
             "alignment": 0.4, "uniformity": -2.0,
             "subject_probe_accuracy": 0.3 - offset,
             "subject_chance_accuracy": 0.12, "step": steps}
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f)
  with open(os.path.join(workdir, runner.HISTOGRAM_FILE), "w") as f:
    json.dump({"edges": [-1.0, 0.0, 1.0], "positive": [1, 9],
               "negative": [6, 4]}, f)
  return results


@pytest.fixture
def results_dir(tmp_path):
  """A sweep folder made by the real runner with the stand-in trainer."""
  sweep = ablation_config.get_config("smoke")
  sweep.methods = ("simclr", "supcon", "dcl")
  sweep.method_specs.supcon = dict(config="supcon")
  sweep.method_specs.dcl = dict(config="dcl")
  folder = tmp_path / "ablation"
  runner.run_sweep(sweep, str(folder), histograms=False, log=lambda _: None,
                   train_fns={"contrastive": runner.one_at_a_time(_fake_train)})
  return folder


def _execute(name: str, env: dict[str, str], cwd: pathlib.Path) -> None:
  nb = nbformat.read(COLABS / name, as_version=4)
  nb.cells.append(nbformat.v4.new_code_cell(
      "import os, sys\n"
      "assert sys.executable == os.environ['CONTRASTIVE_EXPECTED_PYTHON'],"
      " sys.executable"))
  client = nbclient.NotebookClient(
      nb, timeout=240, kernel_name=KERNEL,
      resources={"metadata": {"path": str(cwd)}})
  client.execute(env=env)


def test_quickstart_runs(kernel_env, tmp_path, shared_data_dir):
  del shared_data_dir  # the quickstart reads ../shared/data/fashion_mnist
  _execute("quickstart.ipynb", kernel_env, tmp_path)


def test_loss_explorer_runs(kernel_env, tmp_path):
  # Synthetic embeddings only: it needs no data folder, so it runs anywhere.
  _execute("loss_explorer.ipynb", kernel_env, tmp_path)


def test_ablation_viewer_runs(kernel_env, results_dir, tmp_path):
  env = dict(kernel_env, CONTRASTIVE_ABLATION_DIR=str(results_dir))
  _execute("ablation_viewer.ipynb", env, tmp_path)
  # The viewer (re)writes the report of the folder it was given.
  assert (results_dir / "summary.md").exists()
  assert (results_dir / "accuracy.png").stat().st_size > 0


def test_every_notebook_is_tested_and_starts_with_the_install_cell():
  assert sorted(p.name for p in COLABS.glob("*.ipynb")) == sorted(NOTEBOOKS)
  for name in NOTEBOOKS:
    nb = nbformat.read(COLABS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "google.colab" in code[0].source, name
    assert all(not c.get("outputs") for c in code), f"{name} has outputs"
