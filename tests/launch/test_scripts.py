"""launch/slurm.sh and launch/tpu_vm.sh, run by bash as sbatch and a TPU VM
host would run them (fake SLURM variables; DRY_RUN=1, or fake srun/python
that record what they were given). SLURM and TPUs themselves are not run."""
from __future__ import annotations

import os
import pathlib
import shlex
import shutil
import stat
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCH_ARGS = ["python", "-m", "launch.main", "--distributed"]


def spool_copy(tmp_path, name="slurm.sh"):
  """The script as sbatch runs it: a copy in the spool folder."""
  spool = tmp_path / "spool" / "job42"
  spool.mkdir(parents=True)
  shutil.copy(ROOT / "launch" / name, spool / "slurm_script")
  return spool / "slurm_script"


def bash(script, *args, cwd, **env):
  full_env = {"PATH": os.environ["PATH"], "HOME": str(cwd),
              "SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "node[1-2]",
              "SLURM_NNODES": "2", "SLURM_NTASKS": "2", "SLURM_PROCID": "0"}
  full_env.update(env)
  return subprocess.run(["bash", str(script), *args], cwd=cwd, env=full_env,
                        capture_output=True, text=True, timeout=60)


def commands(proc):
  """The DRY_RUN lines, each split as bash would."""
  assert proc.returncode == 0, proc.stderr
  return [shlex.split(line) for line in proc.stdout.splitlines()]


def test_slurm_from_the_spool_copy_runs_in_the_submit_dir(tmp_path):
  proc = bash(spool_copy(tmp_path), "configs/moco.py:fashion_mnist,tiny",
              "/shared/runs/x", "--config.train.num_steps=5", cwd=ROOT,
              DRY_RUN="1", SLURM_SUBMIT_DIR=str(ROOT))
  cmds = commands(proc)
  assert cmds[0] == ["cd", str(ROOT)]
  assert cmds[-1] == ["srun", "--kill-on-bad-exit=1", *LAUNCH_ARGS,
                      "--config=configs/moco.py:fashion_mnist,tiny",
                      "--workdir=/shared/runs/x", "--config.train.num_steps=5"]


def test_slurm_explicit_repo_and_relative_workdir(tmp_path):
  submit = tmp_path / "home"
  submit.mkdir()
  proc = bash(spool_copy(tmp_path), "configs/simclr.py:uci_hapt,tiny",
              "runs/a b", "--config.loss.name=dcl loss", cwd=submit,
              DRY_RUN="1", SLURM_SUBMIT_DIR=str(submit),
              CONTRASTIVE_REPO=str(ROOT))
  cmds = commands(proc)
  assert cmds[0] == ["cd", str(ROOT)]
  # The workdir is where the user typed it (the submit folder), and
  # arguments with spaces survive the quoting.
  assert cmds[-1][-2:] == [f"--workdir={submit}/runs/a b",
                           "--config.loss.name=dcl loss"]


def test_slurm_without_the_repo_says_how_to_point_at_it(tmp_path):
  proc = bash(spool_copy(tmp_path), "c", "w", cwd=tmp_path, DRY_RUN="1",
              SLURM_SUBMIT_DIR=str(tmp_path))
  assert proc.returncode == 2
  assert proc.stdout == ""
  assert f"SLURM_SUBMIT_DIR={tmp_path} does not hold it" in proc.stderr
  assert "CONTRASTIVE_REPO=/path/to/contrastive" in proc.stderr


def test_slurm_bad_contrastive_repo_is_named(tmp_path):
  proc = bash(spool_copy(tmp_path), "c", "w", cwd=ROOT, DRY_RUN="1",
              SLURM_SUBMIT_DIR=str(ROOT), CONTRASTIVE_REPO=str(tmp_path))
  assert proc.returncode == 2
  assert f"CONTRASTIVE_REPO={tmp_path} does not hold" in proc.stderr


@pytest.mark.parametrize("name", ["slurm.sh", "tpu_vm.sh"])
def test_missing_arguments_show_usage(tmp_path, name):
  proc = bash(ROOT / "launch" / name, "configs/simclr.py:uci_hapt", cwd=ROOT,
              DRY_RUN="1")
  assert proc.returncode == 2
  assert "expected CONFIG and WORKDIR, got 1 argument(s)" in proc.stderr
  assert f"usage: " in proc.stderr and name in proc.stderr


def fake_repo(tmp_path):
  """A repository whose .venv puts recording `srun` and `python` first on
  PATH: each appends its folder and arguments to calls.txt (srun then runs
  its command, without its own option)."""
  repo = tmp_path / "repo"
  (repo / "launch").mkdir(parents=True)
  (repo / "contrastive").mkdir()
  (repo / "launch" / "main.py").touch()
  shutil.copy(ROOT / "launch" / "lib.sh", repo / "launch" / "lib.sh")
  bin_dir = repo / ".venv" / "bin"
  bin_dir.mkdir(parents=True)
  (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\n')
  calls = tmp_path / "calls.txt"
  for tool, then in [("srun", 'shift; exec "$@"'), ("python", "")]:
    path = bin_dir / tool
    path.write_text(f'#!/usr/bin/env bash\n'
                    f'printf "%s\\n" "{tool}" "$PWD" "$@" "--" >> "{calls}"\n'
                    f'{then}\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
  return repo, calls


def recorded(calls):
  runs, run = [], []
  for line in calls.read_text().splitlines():
    if line == "--":
      runs.append(run)
      run = []
    else:
      run.append(line)
  return runs


def test_slurm_runs_srun_in_the_repo_with_its_venv(tmp_path):
  repo, calls = fake_repo(tmp_path)
  proc = bash(spool_copy(tmp_path), "configs/x.py:y", "/runs/z", "--a=1",
              cwd=repo, SLURM_SUBMIT_DIR=str(repo))
  assert proc.returncode == 0, proc.stderr
  srun, python = recorded(calls)
  assert srun == ["srun", str(repo), "--kill-on-bad-exit=1", *LAUNCH_ARGS,
                  "--config=configs/x.py:y", "--workdir=/runs/z", "--a=1"]
  assert python == ["python", str(repo), *LAUNCH_ARGS[1:],
                    "--config=configs/x.py:y", "--workdir=/runs/z", "--a=1"]


def test_tpu_vm_passes_a_gcs_workdir_through(tmp_path):
  proc = bash(ROOT / "launch" / "tpu_vm.sh", "configs/simclr.py:uci_hapt",
              "gs://bucket/run", cwd=tmp_path, DRY_RUN="1")
  cmds = commands(proc)
  assert cmds[0] == ["cd", str(ROOT)]
  assert cmds[-1] == ["exec", *LAUNCH_ARGS,
                      "--config=configs/simclr.py:uci_hapt",
                      "--workdir=gs://bucket/run"]
  assert not list(tmp_path.iterdir())   # no local ./gs:/bucket/run


def test_tpu_vm_runs_python_in_the_repo(tmp_path):
  repo, calls = fake_repo(tmp_path)
  host = tmp_path / "host"
  host.mkdir()
  proc = bash(ROOT / "launch" / "tpu_vm.sh", "configs/x.py:y", "rel/run",
              cwd=host, CONTRASTIVE_REPO=str(repo))
  assert proc.returncode == 0, proc.stderr
  [python] = recorded(calls)
  assert python == ["python", str(repo), *LAUNCH_ARGS[1:],
                    "--config=configs/x.py:y", f"--workdir={host}/rel/run"]
