"""launch.main's workdir guard: no empty workdir after a failed start, one
line for a full disk, one line for a remote workdir without its packages."""
from __future__ import annotations

import errno
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from launch import workdir_guard

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_workdir_made_by_a_failed_start_is_removed(tmp_path):
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match="temperature"):
    with workdir_guard.guard(str(workdir)):
      (workdir / "checkpoints").mkdir(parents=True)   # what the run makes
      (workdir / "metrics.jsonl").touch()
      raise ValueError("temperature must be > 0")
  assert not workdir.exists()


def test_workdir_with_something_written_is_kept(tmp_path):
  workdir = tmp_path / "run"
  with pytest.raises(FloatingPointError):
    with workdir_guard.guard(str(workdir)):
      workdir.mkdir()
      (workdir / "metrics.jsonl").write_text('{"step": 1, "loss": "nan"}\n')
      raise FloatingPointError("loss is nan")
  assert (workdir / "metrics.jsonl").exists()


def test_existing_workdir_is_never_removed(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  with pytest.raises(ValueError):
    with workdir_guard.guard(str(workdir)):
      raise ValueError("bad config")
  assert workdir.is_dir()


def test_success_keeps_the_workdir(tmp_path):
  workdir = tmp_path / "run"
  with workdir_guard.guard(str(workdir)):
    workdir.mkdir()
  assert workdir.is_dir()


def test_full_disk_is_one_line_with_the_free_space(tmp_path, monkeypatch):
  monkeypatch.setattr(workdir_guard, "_quiet_shutdown", lambda: None)
  monkeypatch.setattr(shutil, "disk_usage",
                      lambda path: shutil._ntuple_diskusage(10**9, 10**9, 12345))
  workdir = tmp_path / "run"
  workdir.mkdir()
  with pytest.raises(SystemExit) as exit_info:
    with workdir_guard.guard(str(workdir)):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  message = str(exit_info.value.code)
  assert "\n" not in message
  assert str(workdir) in message and "12.1 KiB free" in message
  assert exit_info.value.__suppress_context__


@pytest.mark.parametrize("error", [
    OSError(errno.EDQUOT, "Disk quota exceeded"),
    ValueError("RESOURCE_EXHAUSTED: Failed to write 9009 bytes to file 8:"
               " No space left on device [os_error_code='28']"),
])
def test_disk_full_found_in_the_chain(error):
  try:
    try:
      raise error
    except Exception as inner:  # pylint: disable=broad-except
      raise RuntimeError("save failed") from inner
  except RuntimeError as outer:
    assert workdir_guard.is_disk_full(outer)
  assert not workdir_guard.is_disk_full(RuntimeError("save failed"))
  assert not workdir_guard.is_disk_full(OSError(errno.EACCES, "denied"))


def test_disk_full_log_records_lose_their_traceback(tmp_path, caplog):
  logger = logging.getLogger("orbax_like")
  with workdir_guard.guard(str(tmp_path)):
    try:
      raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
      logger.exception("background save failed")
    try:
      raise KeyError("other")
    except KeyError:
      logger.exception("unrelated failure")
  disk, other = caplog.records
  assert disk.exc_info is None and other.exc_info is not None


def test_remote_workdir_without_packages_is_one_line(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(
      workdir_guard, "require_remote_support",
      lambda path: (_ for _ in ()).throw(ImportError(
          f"workdir {path!r} ... `pip install -r requirements-gcs.txt`")))
  with pytest.raises(SystemExit, match="requirements-gcs.txt"):
    with workdir_guard.guard("gs://bucket/run"):
      pass
  assert not list(tmp_path.iterdir())


def _run_main(tmp_path, body: str, *args: str):
  """launch.main with `train_and_evaluate` replaced by `body`."""
  script = tmp_path / "run_main.py"
  script.write_text("\n".join([
      "import errno, os, sys",
      "from absl import app",
      "from contrastive.train import loop",
      "def fake(config, workdir, **unused):",
      textwrap.indent(textwrap.dedent(body).strip("\n"), "  "),
      "loop.train_and_evaluate = fake",
      "from launch import main",
      f"sys.argv = ['main', *{list(args)!r}]",
      "app.run(main.main)",
  ]) + "\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
  return subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def test_main_full_disk_exits_1_with_one_line(tmp_path):
  workdir = tmp_path / "run"
  body = """
      os.makedirs(os.path.join(workdir, "checkpoints", "5"))
      open(os.path.join(workdir, "checkpoints", "5", "x"), "w").write("x")
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  """
  proc = _run_main(tmp_path, body, "--config=configs/simclr.py:uci_hapt,tiny",
                   f"--workdir={workdir}")
  assert proc.returncode == 1, proc.stderr
  lines = [l for l in proc.stderr.splitlines()
           if l and not l.startswith("I")]   # absl INFO lines
  assert len(lines) == 1, proc.stderr
  assert lines[0].startswith(f"No space left on device writing to workdir"
                             f" {workdir} (")
  assert (workdir / "checkpoints" / "5" / "x").exists()


def test_main_config_error_leaves_no_workdir(tmp_path):
  workdir = tmp_path / "run"
  body = """
      os.makedirs(os.path.join(workdir, "checkpoints"))
      raise ValueError("temperature must be > 0, got 0.0.")
  """
  proc = _run_main(tmp_path, body, "--config=configs/simclr.py:uci_hapt,tiny",
                   f"--workdir={workdir}")
  assert proc.returncode == 1
  assert "temperature must be > 0" in proc.stderr
  assert not workdir.exists()


def test_sigterm_after_jax_distributed_starts_reaches_the_guard(tmp_path):
  """JAX's preemption service installs a SIGTERM handler of its own, which
  took SIGTERM away from the launcher's guard (a run signalled between
  start-up and its first step trained on to the end): it is turned off."""
  script = tmp_path / "init.py"
  script.write_text(textwrap.dedent("""
      import os, signal, socket, time
      with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
      os.environ.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                        JAX_NUM_PROCESSES="1", JAX_PROCESS_ID="0")
      from contrastive.train import distributed
      from launch import main

      main._GUARD.__enter__()
      distributed.initialize_from_env()
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(0.5)
      print("requested:", main._GUARD.requested)
      """))
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
  proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "requested: True" in proc.stdout, proc.stdout + proc.stderr[-2000:]
