"""metrics.jsonl: int steps, no repeated rows after a resume, remote workdirs."""
from __future__ import annotations

import importlib
import json
import os

import fsspec
from etils.epath import backend as epath_backend
from fsspec.implementations.memory import MemoryFileSystem
import numpy as np
import pytest

from contrastive.train import metrics_writer
from contrastive.train.metrics_writer import MetricsWriter, read_metrics

# The module (`fsspec.registry` the attribute is a read-only view).
fsspec_registry = importlib.import_module("fsspec.registry")


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
  """A writer that mistook a URI for a local path would make `./gs:/...`
  here, where the tests look for it, not in the repository."""
  monkeypatch.chdir(tmp_path)


def rows(workdir):
  return [json.loads(line) for line in
          (workdir / "metrics.jsonl").read_text().splitlines()]


def test_results_step_does_not_override_the_int_step(tmp_path):
  writer = MetricsWriter(tmp_path, tensorboard=False)
  writer.write(300, {"step": 300, "knn_accuracy": np.float32(0.5)})
  writer.close()
  [row] = rows(tmp_path)
  assert row == {"step": 300, "knn_accuracy": 0.5}
  assert isinstance(row["step"], int)
  assert '"step": 300,' in (tmp_path / "metrics.jsonl").read_text()


def test_non_finite_values_are_strings(tmp_path):
  writer = MetricsWriter(tmp_path, tensorboard=False)
  writer.write(1, {"loss": float("nan")})
  writer.close()
  assert rows(tmp_path) == [{"step": 1, "loss": "nan"}]


def run(workdir, steps, *, resume_step=None, log_every=2, hook_at=(),
        tensorboard=False):
  """Logs like the training loop: a hook row before a step, a loss row after
  every `log_every` steps."""
  writer = MetricsWriter(workdir, tensorboard=tensorboard,
                         resume_step=resume_step)
  for step in steps:
    if step in hook_at:
      writer.write(step, {"clusters": 3})
    done = step + 1
    if done % log_every == 0:
      writer.write(done, {"loss": 1.0 / done})
  return writer


def test_resume_drops_rows_past_the_checkpoint(tmp_path):
  straight = tmp_path / "straight"
  run(straight, range(10), hook_at=(4,)).close()
  resumed = tmp_path / "resumed"
  # Killed after step 7; the last checkpoint is at step 4.
  run(resumed, range(7), hook_at=(4,)).close()
  assert [r["step"] for r in rows(resumed)] == [2, 4, 4, 6]
  run(resumed, range(4, 10), resume_step=4, hook_at=(4,)).close()
  assert rows(resumed) == rows(straight)
  assert [r["step"] for r in rows(resumed)] == [2, 4, 4, 6, 8, 10]


def test_resume_method_and_count(tmp_path):
  run(tmp_path, range(8)).close()
  writer = MetricsWriter(tmp_path, tensorboard=False)
  assert writer.resume(5) == 2           # rows 6 and 8
  assert [r["step"] for r in read_metrics(tmp_path)] == [2, 4]
  assert not (tmp_path / "metrics.jsonl.tmp").exists()
  writer.write(6, {"loss": 0.0})
  with pytest.raises(RuntimeError, match="before the first write"):
    writer.resume(6)
  writer.close()


def test_final_row_of_a_finished_run_started_again_is_not_repeated(tmp_path):
  for _ in range(2):
    writer = MetricsWriter(tmp_path, tensorboard=False,
                           resume_step=10 if (tmp_path / "metrics.jsonl")
                           .exists() else None)
    writer.write(10, {"step": 10, "knn_accuracy": 0.7})
    writer.close()
  assert rows(tmp_path) == [{"step": 10, "knn_accuracy": 0.7}]


def test_disabled_writer_touches_nothing(tmp_path):
  writer = MetricsWriter(tmp_path / "w", enabled=False, resume_step=3)
  writer.write(1, {"loss": 1.0})
  writer.close()
  assert not (tmp_path / "w").exists()


def test_no_file_before_the_first_row(tmp_path):
  writer = MetricsWriter(tmp_path / "w")
  writer.close()
  assert not (tmp_path / "w").exists()


def test_tensorboard_purges_events_past_the_resume_step(tmp_path, monkeypatch):
  made = []

  class FakeSummaryWriter:

    def __init__(self, logdir, purge_step=None):
      made.append((logdir, purge_step))

    def add_scalar(self, *args):
      pass

    def flush(self):
      pass

    def close(self):
      pass

  import tensorboardX  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(tensorboardX, "SummaryWriter", FakeSummaryWriter)
  run(tmp_path, range(4), tensorboard=True).close()
  run(tmp_path, range(2, 6), resume_step=2, tensorboard=True).close()
  assert made == [(os.path.join(tmp_path, "tensorboard"), None),
                  (os.path.join(tmp_path, "tensorboard"), 3)]


@pytest.fixture
def fake_gcs(monkeypatch):
  """`gs://` served from memory through fsspec, as etils.epath reaches GCS
  when gcsfs is installed (gcsfs itself and the real service untested)."""

  class FakeGCS(MemoryFileSystem):
    protocol = ("gs", "gcs")
    store = {}
    pseudo_dirs = [""]

    def __init__(self, *args, finalize_on_close=None, **kwargs):
      del finalize_on_close
      super().__init__(*args, **kwargs)

    @classmethod
    def _strip_protocol(cls, path):
      path = os.fspath(path)
      for prefix in ("gs://", "gcs://"):
        if path.startswith(prefix):
          path = path[len(prefix):]
      return "/" + path.strip("/")

  fsspec.register_implementation("gcs", FakeGCS, clobber=True)
  fsspec.register_implementation("gs", FakeGCS, clobber=True)
  epath_backend.fsspec_backend._get_filesystem.cache_clear()
  yield FakeGCS
  fsspec_registry._registry.pop("gcs", None)
  fsspec_registry._registry.pop("gs", None)
  epath_backend.fsspec_backend._get_filesystem.cache_clear()


def test_gs_workdir_without_packages_names_the_pip_command(tmp_path,
                                                           monkeypatch):
  monkeypatch.setitem(fsspec_registry.known_implementations, "gcs",
                      {"class": "no_such_module_gcsfs.GCSFileSystem",
                       "err": "Install gcsfs to access Google Storage"})
  fsspec_registry._registry.pop("gcs", None)
  with pytest.raises(ImportError,
                     match=r"gs://.*pip install -r requirements-gcs.txt"):
    MetricsWriter("gs://bucket/run")
  assert not list(tmp_path.iterdir())   # no local ./gs:/bucket/run


def test_unknown_scheme_is_refused(tmp_path):
  with pytest.raises(ValueError, match=r"ftp://.*gs://"):
    MetricsWriter("ftp://host/run")
  assert not list(tmp_path.iterdir())


def test_gs_workdir_writes_through_epath(tmp_path, monkeypatch, fake_gcs):
  monkeypatch.setattr(metrics_writer, "require_remote_support",
                      lambda path: None)   # google-cloud-storage not here
  workdir = "gs://bucket/run"
  # TensorBoard on gs:// goes through tensorboardX's own GCS writer
  # (google-cloud-storage), not testable here.
  writer = run(workdir, range(7), hook_at=(4,))
  writer.close()
  assert [r["step"] for r in read_metrics(workdir)] == [2, 4, 4, 6]
  writer = run(workdir, range(4, 10), resume_step=4, hook_at=(4,))
  writer.close()
  assert [r["step"] for r in read_metrics(workdir)] == [2, 4, 4, 6, 8, 10]
  assert "/bucket/run/metrics.jsonl" in fake_gcs.store
  assert not list(tmp_path.iterdir())


def test_remote_rows_are_uploaded_at_most_every_flush_secs(tmp_path,
                                                           monkeypatch,
                                                           fake_gcs):
  monkeypatch.setattr(metrics_writer, "require_remote_support",
                      lambda path: None)
  writer = MetricsWriter("gs://b/r", tensorboard=False, flush_secs=3600)
  writer.write(1, {"loss": 1.0})     # the first row goes at once
  writer.write(2, {"loss": 0.5})
  assert [r["step"] for r in read_metrics("gs://b/r")] == [1]
  writer.close()
  assert [r["step"] for r in read_metrics("gs://b/r")] == [1, 2]
  assert not list(tmp_path.iterdir())


def test_remote_tensorboard_skipped_where_tensorboardx_cannot_write(
    monkeypatch, fake_gcs):
  monkeypatch.setattr(metrics_writer, "require_remote_support",
                      lambda path: None)
  monkeypatch.setattr(metrics_writer, "_TENSORBOARD_REMOTE", {})
  writer = MetricsWriter("gs://b/r")
  writer.write(1, {"loss": 1.0})
  writer.close()
  assert read_metrics("gs://b/r") == [{"step": 1, "loss": 1.0}]
