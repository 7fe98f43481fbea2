"""Finding and fetching datasets: a local HTTP mirror stands in for the
publishers (no internet here); checksums, atomicity, archives, the CLI."""
from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import pathlib
import struct
import tarfile
import threading
import zipfile

import numpy as np
import pytest

from contrastive import data
from contrastive.data import base
from contrastive.data import fetch
from contrastive.data import fsdd
from contrastive.data import sources


def _idx(array: np.ndarray) -> bytes:
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
  return header + struct.pack(f">{array.ndim}I", *array.shape) + (
      array.astype(np.uint8).tobytes())


def _fake_fashion_mnist(folder: pathlib.Path) -> dict[str, bytes]:
  """Four small gzipped IDX files, as the publisher names them."""
  rng = np.random.default_rng(0)
  files = {}
  for stem, n in (("train", 6), ("t10k", 4)):
    files[f"{stem}-images-idx3-ubyte.gz"] = gzip.compress(_idx(
        rng.integers(0, 256, (n, 28, 28))), mtime=0)
    files[f"{stem}-labels-idx1-ubyte.gz"] = gzip.compress(_idx(
        rng.integers(0, 10, n)), mtime=0)
  folder.mkdir(parents=True, exist_ok=True)
  for name, content in files.items():
    (folder / name).write_bytes(content)
  return files


def _wav_bytes(samples) -> bytes:
  import wave  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  with wave.open(buffer, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(8000)
    w.writeframes(np.asarray(samples, "<i2").tobytes())
  return buffer.getvalue()


def _manifest(files: dict[str, bytes]) -> str:
  return "".join(f"{hashlib.sha256(c).hexdigest()}  {p}\n"
                 for p, c in sorted(files.items()))


@pytest.fixture
def mirror(tmp_path):
  """(folder served at url, url) by a local HTTP server."""
  root = tmp_path / "mirror"
  root.mkdir()

  class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
      del args

  server = http.server.ThreadingHTTPServer(
      ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield root, f"http://127.0.0.1:{server.server_address[1]}/"
  server.shutdown()
  server.server_close()


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
  """No copy in the default places: ../shared/data and Debian's folder point
  at empty folders, the cache root is a temporary one."""
  monkeypatch.setattr(base, "DEFAULT_DATA_ROOT", tmp_path / "no_shared")
  monkeypatch.setitem(sources.SPECS, "fashion_mnist", dataclasses.replace(
      sources.SPECS["fashion_mnist"], system_dirs=(tmp_path / "no_debian",)))
  cache = tmp_path / "cache"
  monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
  return cache / "contrastive"


def _use_manifest(monkeypatch, tmp_path, name, files):
  folder = tmp_path / "checksums"
  folder.mkdir(exist_ok=True)
  (folder / f"{name}.sha256").write_text(_manifest(files))
  monkeypatch.setattr(sources, "CHECKSUM_DIR", folder)


def _use_mirrors(monkeypatch, name, *mirrors):
  monkeypatch.setitem(sources.SPECS, name, dataclasses.replace(
      sources.SPECS[name], mirrors=mirrors))


def test_reader_downloads_verifies_and_reuses_the_cache(
    mirror, nowhere, tmp_path, monkeypatch):
  root, url = mirror
  files = _fake_fashion_mnist(root)
  _use_manifest(monkeypatch, tmp_path, "fashion_mnist", files)
  _use_mirrors(monkeypatch, "fashion_mnist", sources.Files(url))
  with pytest.raises(data.DataNotFoundError, match="fetch fashion_mnist"):
    data.build_dataset({"name": "fashion_mnist", "source": "files"}, "train")
  ds = data.build_dataset({"name": "fashion_mnist", "download": True}, "train")
  assert len(ds) == 6
  cached = nowhere / "fashion_mnist"
  assert ds.info.extras["data_dir"] == str(cached)
  assert sorted(p.name for p in cached.iterdir()) == sorted(files)
  # Only the dataset folder is left in the cache: no temporary files.
  assert [p.name for p in nowhere.iterdir()] == ["fashion_mnist"]
  # Found in the cache from now on, without the mirror and without download.
  for path in root.iterdir():
    path.unlink()
  again = data.build_dataset({"name": "fashion_mnist"}, "test")
  assert len(again) == 4


def test_checksum_mismatch_is_a_clear_error_and_keeps_nothing(
    mirror, nowhere, tmp_path, monkeypatch):
  root, url = mirror
  files = _fake_fashion_mnist(root)
  _use_manifest(monkeypatch, tmp_path, "fashion_mnist", files)
  _use_mirrors(monkeypatch, "fashion_mnist", sources.Files(url))
  damaged = bytearray(files["train-labels-idx1-ubyte.gz"])
  damaged[-5] ^= 0xFF
  (root / "train-labels-idx1-ubyte.gz").write_bytes(bytes(damaged))
  with pytest.raises(data.FetchError) as e:
    data.build_dataset({"name": "fashion_mnist", "download": True}, "train")
  message = str(e.value)
  assert "checksum mismatch" in message
  assert f"{url}train-labels-idx1-ubyte.gz" in message
  assert hashlib.sha256(bytes(damaged)).hexdigest() in message
  assert hashlib.sha256(
      files["train-labels-idx1-ubyte.gz"]).hexdigest() in message
  assert not nowhere.exists() or not any(nowhere.iterdir())


def test_second_mirror_is_tried_and_every_reason_reported(
    mirror, tmp_path, monkeypatch):
  root, url = mirror
  files = _fake_fashion_mnist(root / "good")
  _use_manifest(monkeypatch, tmp_path, "fashion_mnist", files)
  target = tmp_path / "fm"
  got = sources.fetch("fashion_mnist", target, mirrors=(
      sources.Files(url + "absent/"), sources.Files(url + "good/")))
  assert got == target and sources.SPECS["fashion_mnist"].present(target)
  with pytest.raises(data.FetchError, match=r"no mirror worked:\n.*404"
                     r"(.|\n)*127\.0\.0\.1:1/"):
    sources.fetch("fashion_mnist", tmp_path / "other", mirrors=(
        sources.Files(url + "absent/"), sources.Files("http://127.0.0.1:1/")))


@pytest.mark.parametrize("kind", ["tar.gz", "zip", "nested zip"])
def test_archive_members_are_checked_and_extracted(
    kind, mirror, nowhere, tmp_path, monkeypatch):
  root, url = mirror
  files = {f"recordings/{d}_{s}_{i}.wav": _wav_bytes(np.arange(10 + d) * 7)
           for d in (1, 2) for s in ("amy", "bob") for i in (0, 6)}
  _use_manifest(monkeypatch, tmp_path, "fsdd", files)
  extra = {"README.md": b"not in the manifest"}
  buffer = io.BytesIO()
  if kind == "tar.gz":
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
      for path, content in {**files, **extra}.items():
        info = tarfile.TarInfo(f"fsdd-1.0.10/{path}")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
  else:
    with zipfile.ZipFile(buffer, "w") as archive:
      for path, content in {**files, **extra}.items():
        archive.writestr(f"top/{path}", content)
    if kind == "nested zip":
      inner, buffer = buffer.getvalue(), io.BytesIO()
      with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Data Set.zip", inner)
  (root / "release").write_bytes(buffer.getvalue())
  _use_mirrors(monkeypatch, "fsdd", sources.Archive(url + "release"))
  ds = fsdd.load_fsdd("train", download=True)
  assert len(ds) == 4 and ds.info.extras["speakers"] == ("amy", "bob")
  folder = nowhere / "fsdd"
  assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                if p.is_file()) == sorted(files)


def test_archive_with_a_wrong_or_missing_member(mirror, tmp_path, monkeypatch):
  root, url = mirror
  files = {"RawData/labels.txt": b"1 1 1 1 10\n",
           "activity_labels.txt": b"1 WALKING\n"}
  _use_manifest(monkeypatch, tmp_path, "uci_hapt", files)
  for name, members in (("bad.zip", {**files, "RawData/labels.txt": b"2"}),
                        ("short.zip", {"activity_labels.txt": b"1 WALKING\n"})):
    with zipfile.ZipFile(root / name, "w") as archive:
      for path, content in members.items():
        archive.writestr(path, content)
  with pytest.raises(data.FetchError, match=r"checksum mismatch for "
                     r"RawData/labels.txt in http.*bad\.zip"):
    sources.fetch("uci_hapt", tmp_path / "a",
                mirrors=(sources.Archive(url + "bad.zip"),))
  with pytest.raises(data.FetchError,
                     match=r"short\.zip lacks 1 of .* RawData/labels.txt"):
    sources.fetch("uci_hapt", tmp_path / "b",
                mirrors=(sources.Archive(url + "short.zip"),))
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      "checksums", "mirror"]  # nothing partial left beside the targets


def test_missing_data_is_one_error_naming_places_and_command(nowhere):
  for name in ("fashion_mnist", "fsdd", "uci_hapt"):
    config = {"name": name, "source": "files"}
    with pytest.raises(data.DataNotFoundError) as e:
      data.build_dataset(config, "train")
    message = str(e.value)
    for place in sources.candidates(name):
      assert str(place) in message
    assert f"run: python -m contrastive.data.fetch {name}" in message
    assert e.value.__cause__ is None
  # auto adds the TFDS copy to the places, still as one error, no chain.
  with pytest.raises(data.DataNotFoundError, match="TFDS default") as e:
    data.build_dataset({"name": "fashion_mnist"}, "train")
  assert e.value.__cause__ is None and e.value.__suppress_context__ is False
  assert e.value.__context__ is None


def test_cli_reports_a_copy_installs_the_debian_package_or_downloads(
    mirror, nowhere, tmp_path, monkeypatch, capsys):
  root, url = mirror
  files = _fake_fashion_mnist(root)
  _use_manifest(monkeypatch, tmp_path, "fashion_mnist", files)
  _use_mirrors(monkeypatch, "fashion_mnist", sources.Files(url))
  monkeypatch.setattr(fetch.shutil, "which", lambda cmd: "/usr/bin/" + cmd)
  monkeypatch.setattr(fetch.os, "geteuid", lambda: 0)
  debian = sources.SPECS["fashion_mnist"].system_dirs[0]
  commands = []

  def fake_run(command, **kwargs):
    del kwargs
    commands.append(command)
    if command[:2] == ["apt-get", "install"] and len(commands) == 3:
      _fake_fashion_mnist(debian)  # Installs on the try after the update.
      return type("Done", (), {"returncode": 0})
    return type("Done", (), {"returncode": 100 if command[1] == "install"
                             else 0})

  assert fetch.main(["fashion_mnist"], run=fake_run) == 0
  assert commands == [
      ["apt-get", "install", "-y", "--no-install-recommends",
       "dataset-fashion-mnist"], ["apt-get", "update"], commands[0]]
  assert f"at {debian}" in capsys.readouterr().out
  # Found now: nothing is run.
  assert fetch.main(["fashion_mnist"], run=fake_run) == 0
  assert len(commands) == 3 and "found at" in capsys.readouterr().out
  # Not root: the publisher's files, into --data_dir.
  monkeypatch.setattr(fetch.os, "geteuid", lambda: 1000)
  target = tmp_path / "mine"
  assert fetch.main(["fashion_mnist", "--data_dir", str(target)]) == 0
  assert sources.SPECS["fashion_mnist"].present(target)
  (root / "t10k-images-idx3-ubyte.gz").write_bytes(b"changed")
  assert fetch.main(["fashion_mnist", "--data_dir",
                     str(tmp_path / "other")]) == 1
  assert "checksum mismatch" in capsys.readouterr().err


def test_checksum_files_match_the_shared_copies(shared_data_dir, capsys):
  """The manifests are the publishers' files as ../shared/data holds them."""
  for name in ("fashion_mnist", "fsdd", "uci_hapt"):
    assert fetch.main([name, "--manifest_from",
                       str(shared_data_dir / name)]) == 0
    assert capsys.readouterr().out == (
        sources.CHECKSUM_DIR / f"{name}.sha256").read_text()
  assert len(sources.read_manifest("fsdd")) == 3000
  assert len(sources.read_manifest("uci_hapt")) == 2 * 61 + 2
