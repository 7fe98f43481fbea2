"""launch/ablate_array.sh in dry-run mode, run as sbatch runs it: a copy of
the script in a spool folder, from the submit directory's environment."""
from __future__ import annotations

import os
import pathlib
import shlex
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _sbatch_copy(tmp_path, *args, **env):
  spool = tmp_path / "spool"
  spool.mkdir(exist_ok=True)
  script = shutil.copy(ROOT / "launch" / "ablate_array.sh",
                       spool / "slurm_script")
  return subprocess.run(
      ["bash", script, *args], cwd=tmp_path, capture_output=True, text=True,
      env={**os.environ, "DRY_RUN": "1", "SLURM_ARRAY_JOB_ID": "77",
           "SLURM_ARRAY_TASK_ID": "3", **env}, timeout=60)


def test_dry_run_runs_the_launcher_from_the_submit_directory(tmp_path):
  proc = _sbatch_copy(tmp_path, "configs/ablation.py:smoke",
                      str(tmp_path / "sweep"), "--claim_timeout=60",
                      SLURM_SUBMIT_DIR=str(ROOT))
  assert proc.returncode == 0, proc.stderr
  cd, command = proc.stdout.strip().split(" && ")
  assert shlex.split(cd) == ["cd", str(ROOT)]
  argv = shlex.split(command)
  assert argv[:3] == ["python", "-m", "launch.ablate"]
  assert argv[3:] == ["--config=configs/ablation.py:smoke",
                      f"--workdir={tmp_path / 'sweep'}", "--claim_timeout=60"]
  # The flags it passes are the launcher's: the same command lists the grid.
  listed = subprocess.run([sys.executable, *argv[1:], "--list_runs"],
                          cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
  assert listed.returncode == 0, listed.stderr[-3000:]
  assert listed.stdout.strip().endswith("7 runs")
  assert not (tmp_path / "sweep").exists()


def test_outside_the_repository_it_says_where_to_submit_from(tmp_path):
  proc = _sbatch_copy(tmp_path, "configs/ablation.py:smoke", "/tmp/x",
                      SLURM_SUBMIT_DIR=str(tmp_path))
  assert proc.returncode == 2
  assert "is not the contrastive repository" in proc.stderr
  assert "CONTRASTIVE_REPO" in proc.stderr
  proc = _sbatch_copy(tmp_path, "configs/ablation.py:smoke", "/tmp/x",
                      SLURM_SUBMIT_DIR=str(tmp_path),
                      CONTRASTIVE_REPO=str(ROOT))
  assert proc.returncode == 0, proc.stderr


def test_missing_arguments_print_the_usage(tmp_path):
  proc = _sbatch_copy(tmp_path, "configs/ablation.py:smoke",
                      SLURM_SUBMIT_DIR=str(ROOT))
  assert proc.returncode == 2 and "usage: sbatch --array" in proc.stderr
