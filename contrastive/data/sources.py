r"""Where the offline datasets are found, and how they are fetched when not.

Why: the readers take the publishers' layouts from a folder. A project
checkout finds them in `../shared/data`; a fresh machine has no such folder,
and a missing dataset must say where it was looked for and the one command
that fixes it. `locate` looks in the config's `data_dir`, else in
`../shared/data/<name>`, the Debian package's folder (Fashion-MNIST) and the
user cache `~/.cache/contrastive/<name>`, and raises `DataNotFoundError`
naming them all and that command:

  python -m contrastive.data.fetch fashion_mnist

(contrastive/data/fetch.py) installs Debian's `dataset-fashion-mnist` when
run as root on a machine with apt (machines of this project reach only PyPI
and Debian), and otherwise downloads the publisher's files with `fetch`
here; FSDD and UCI HAPT have no Debian package and are downloaded. The
readers download too with `download=True`.

Every downloaded file is checked against its SHA-256 in
`checksums/<name>.sha256` (computed from the copies in `../shared/data`,
which are in the publishers' layout). Downloads are atomic: a file is
streamed to a temporary name, hashed, and renamed only when the hash
matches; the dataset is assembled in a temporary folder that is renamed to
its final name once complete, so an interrupted fetch leaves nothing a
reader would take for a copy. Archives made on the fly (GitHub's, UCI's)
have no stable hash of their own: their members are checked instead.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.client
import io
import logging
import os
import pathlib
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from typing import BinaryIO, Callable, Iterator, Mapping, Sequence

from contrastive.data import base

CHECKSUM_DIR = pathlib.Path(__file__).resolve().parent / "checksums"
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Files:
  """A mirror serving each file at `base_url + <path in the dataset>`.

  Attributes:
    base_url: ends with '/'.
    sha256: per path, the hash of this mirror's bytes when they differ from
      the manifest's (another compression of the same data); None: the
      manifest's hashes.
  """

  base_url: str
  sha256: Mapping[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class Archive:
  """A mirror serving one .zip or .tar.gz that holds the dataset's files
  under any leading folders (zips nested one level deep included)."""

  url: str


Mirror = Files | Archive


@dataclasses.dataclass(frozen=True)
class Spec:
  """How to recognise, find and fetch one dataset.

  Attributes:
    layout: what a copy holds, for messages ('no <layout> found').
    present: whether a folder holds a copy.
    where_to_get: the publisher, for messages.
    mirrors: tried in order until one yields every manifest file.
    system_dirs: folders an OS package installs the data into.
    debian_package: the package that installs it, if any.
    files: glob patterns of the files the manifest covers (relative to a
      copy's folder).
  """

  layout: str
  present: Callable[[pathlib.Path], bool]
  where_to_get: str
  mirrors: tuple[Mirror, ...]
  system_dirs: tuple[pathlib.Path, ...] = ()
  debian_package: str | None = None
  files: tuple[str, ...] = ()


_FMNIST_FILES = tuple(f"{stem}-{kind}" for stem in ("train", "t10k")
                      for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))


def _fmnist_present(folder: pathlib.Path) -> bool:
  return all((folder / f"{name}.gz").is_file() or (folder / name).is_file()
             for name in _FMNIST_FILES)


def _fsdd_present(folder: pathlib.Path) -> bool:
  recordings = folder / "recordings"
  return recordings.is_dir() and any(True for _ in recordings.glob("*.wav"))


def _hapt_present(folder: pathlib.Path) -> bool:
  return ((folder / "RawData" / "labels.txt").is_file()
          and (folder / "activity_labels.txt").is_file())


SPECS: Mapping[str, Spec] = {
    "fashion_mnist": Spec(
        layout="*-idx?-ubyte[.gz] files (all four)",
        present=_fmnist_present,
        where_to_get="https://github.com/zalandoresearch/fashion-mnist"
        " (data/fashion/*-ubyte.gz)",
        mirrors=(
            # The repository's files: byte-identical to ../shared/data and to
            # Debian's package (both come from it).
            Files("https://raw.githubusercontent.com/zalandoresearch/"
                  "fashion-mnist/master/data/fashion/"),
            # The publisher's S3 copies: the same images, gzipped with a
            # different header; hashes as recorded by TFDS
            # (tensorflow_datasets/url_checksums/fashion_mnist.txt).
            Files("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                  sha256={
                      "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f"
                      "6a32ed271626dd12800ba2636569512369268a84",
                      "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764"
                      "e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                      "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d235"
                      "1dde16a484bd415d4595297633bb08f03db6a073",
                      "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361"
                      "aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                  }),
        ),
        system_dirs=(pathlib.Path("/usr/share/datasets/fashion-mnist"),),
        debian_package="dataset-fashion-mnist",
        files=("*-ubyte.gz",),
    ),
    "fsdd": Spec(
        layout="recordings/{digit}_{speaker}_{index}.wav files",
        present=_fsdd_present,
        where_to_get="https://github.com/Jakobovski/free-spoken-digit-dataset",
        mirrors=(
            Archive("https://github.com/Jakobovski/free-spoken-digit-dataset/"
                    "archive/refs/tags/v1.0.10.tar.gz"),
            Archive("https://github.com/Jakobovski/free-spoken-digit-dataset/"
                    "archive/refs/heads/master.tar.gz"),
        ),
        files=("recordings/*.wav",),
    ),
    "uci_hapt": Spec(
        layout="RawData/ (labels.txt, acc_expEE_userUU.txt,"
        " gyro_expEE_userUU.txt) and activity_labels.txt files",
        present=_hapt_present,
        where_to_get="the UCI Machine Learning Repository,"
        " https://archive.ics.uci.edu (\"Smartphone-Based Recognition of Human"
        " Activities and Postural Transitions\", RawData/ folder)",
        mirrors=(
            Archive("https://archive.ics.uci.edu/static/public/341/smartphone"
                    "+based+recognition+of+human+activities+and+postural"
                    "+transitions.zip"),
            Archive("https://archive.ics.uci.edu/ml/machine-learning-databases"
                    "/00341/HAPT%20Data%20Set.zip"),
        ),
        files=("RawData/*.txt", "activity_labels.txt"),
    ),
}


def _spec(name: str) -> Spec:
  if name not in SPECS:
    raise ValueError(f"no fetch rule for dataset {name!r}; datasets with"
                     f" files to fetch: {sorted(SPECS)}.")
  return SPECS[name]


def read_manifest(name: str) -> dict[str, str]:
  """{path in the dataset folder: SHA-256} from `checksums/<name>.sha256`."""
  path = CHECKSUM_DIR / f"{name}.sha256"
  manifest = {}
  for line in path.read_text().splitlines():
    if line.strip():
      digest, _, relpath = line.partition("  ")
      manifest[relpath] = digest
  return manifest


def manifest_of(name: str, folder: pathlib.Path) -> str:
  """The `sha256sum`-style manifest of the copy of `name` in `folder` (how
  the files in `checksums/` were made from `../shared/data`)."""
  paths = sorted({p.relative_to(folder).as_posix()
                  for pattern in _spec(name).files
                  for p in folder.glob(pattern) if p.is_file()})
  return "".join(f"{_hash_file(folder / p)}  {p}\n" for p in paths)


def _hash_file(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(_CHUNK):
      digest.update(chunk)
  return digest.hexdigest()


def candidates(name: str, data_dir=None, cache_dir=None) -> list[pathlib.Path]:
  """The folders `locate` tries, in order."""
  if data_dir is not None:
    return [pathlib.Path(data_dir).expanduser()]
  spec = _spec(name)
  return [base.default_data_dir(name), *spec.system_dirs,
          cache_folder(name, cache_dir)]


def cache_folder(name: str, cache_dir=None) -> pathlib.Path:
  root = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else (
      base.default_cache_root())
  return root / name


def find(name: str, data_dir=None, cache_dir=None) -> pathlib.Path | None:
  """The first candidate folder holding a copy, or None."""
  spec = _spec(name)
  return next((c for c in candidates(name, data_dir, cache_dir)
               if spec.present(c)), None)


def locate(name: str, data_dir=None, *, cache_dir=None,
           download: bool = False) -> pathlib.Path:
  """The folder holding dataset `name`; fetched first when `download`.

  Args:
    name: 'fashion_mnist', 'fsdd' or 'uci_hapt'.
    data_dir: the one folder to use; None tries `candidates(name)`.
    cache_dir: the cache root (default `~/.cache/contrastive`).
    download: when no copy is found, fetch the publisher's files into
      `data_dir` (or `<cache_dir>/<name>`) instead of failing.

  Raises:
    DataNotFoundError: no copy and not `download`; the message lists the
      folders tried and the command that fetches the data.
    FetchError: the download failed.
  """
  spec = _spec(name)
  found = find(name, data_dir, cache_dir)
  if found is not None:
    return found
  if download:
    target = (pathlib.Path(data_dir).expanduser() if data_dir is not None
              else cache_folder(name, cache_dir))
    return fetch(name, target)
  tried = ", ".join(str(c) for c in candidates(name, data_dir, cache_dir))
  raise base.missing_data_error(
      name, tried, f"no {spec.layout} found", spec.where_to_get,
      data_dir=data_dir)


def download_file(url: str, dest: pathlib.Path, sha256: str | None = None,
                  *, timeout: float = 60.0) -> str:
  """Streams `url` to `dest` atomically; returns the SHA-256 of its bytes.

  The bytes go to a temporary file beside `dest`, renamed to `dest` only
  after the hash matches `sha256` (when given).

  Raises:
    FetchError: the URL cannot be read, or the hash differs (the message
      names the URL, both hashes and the size received).
  """
  dest.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.",
                                  suffix=".part")
  tmp = pathlib.Path(tmp_name)
  digest, size = hashlib.sha256(), 0
  try:
    with os.fdopen(fd, "wb") as out:
      try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
          while chunk := response.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
      except (urllib.error.URLError, http.client.HTTPException,
              TimeoutError, ConnectionError) as e:
        reason = e if isinstance(e, urllib.error.HTTPError) else (
            getattr(e, "reason", None) or e)
        raise base.FetchError(f"could not download {url}: {reason}.") from None
    got = digest.hexdigest()
    if sha256 is not None and got != sha256:
      raise base.FetchError(
          f"checksum mismatch for {url}: SHA-256 {got} ({size} bytes), expected"
          f" {sha256}. The file was not kept; the mirror serves different"
          " bytes (a changed or damaged file).")
    os.replace(tmp, dest)
    return got
  finally:
    tmp.unlink(missing_ok=True)


def _write_verified(stream: BinaryIO, dest: pathlib.Path, sha256: str,
                    origin: str) -> None:
  """Copies `stream` to `dest` through a temporary file, checking its hash."""
  dest.parent.mkdir(parents=True, exist_ok=True)
  tmp = dest.with_name(f".{dest.name}.part")
  digest = hashlib.sha256()
  try:
    with open(tmp, "wb") as out:
      while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        out.write(chunk)
    if digest.hexdigest() != sha256:
      raise base.FetchError(
          f"checksum mismatch for {origin}: SHA-256 {digest.hexdigest()},"
          f" expected {sha256}. The file was not kept.")
    os.replace(tmp, dest)
  finally:
    tmp.unlink(missing_ok=True)


def _match(member: str, manifest: Mapping[str, str]) -> str | None:
  """The manifest path `member` ends with ('fsdd-1.0.10/recordings/x.wav'
  -> 'recordings/x.wav'), or None."""
  parts = member.replace("\\", "/").split("/")
  for i in range(len(parts)):
    relpath = "/".join(parts[i:])
    if relpath in manifest:
      return relpath
  return None


def _archive_members(data: BinaryIO, origin: str, depth: int = 0
                     ) -> Iterator[tuple[str, Callable[[], BinaryIO]]]:
  """(member name, opener) of every regular file of a zip or tar archive,
  descending once into nested zips."""
  if zipfile.is_zipfile(data):
    data.seek(0)
    with zipfile.ZipFile(data) as archive:
      for info in archive.infolist():
        if info.is_dir():
          continue
        if info.filename.lower().endswith(".zip") and depth == 0:
          with archive.open(info) as nested:
            yield from _archive_members(
                io.BytesIO(nested.read()), f"{origin}!{info.filename}", 1)
          continue
        yield info.filename, lambda info=info: archive.open(info)
    return
  data.seek(0)
  try:
    archive = tarfile.open(fileobj=data, mode="r:*")
  except tarfile.TarError as e:
    raise base.FetchError(
        f"{origin} is neither a zip nor a tar archive ({e}).") from None
  with archive:
    for info in archive:
      if info.isfile():
        yield info.name, lambda info=info: archive.extractfile(info)


def _fetch_archive(mirror: Archive, staging: pathlib.Path,
                   manifest: Mapping[str, str]) -> None:
  archive_path = staging / ".archive"
  download_file(mirror.url, archive_path)
  try:
    with open(archive_path, "rb") as data:
      for member, opener in _archive_members(data, mirror.url):
        relpath = _match(member, manifest)
        if relpath is None or (staging / relpath).exists():
          continue
        with opener() as stream:
          _write_verified(stream, staging / relpath, manifest[relpath],
                          f"{member} in {mirror.url}")
  finally:
    archive_path.unlink(missing_ok=True)
  missing = sorted(p for p in manifest if not (staging / p).is_file())
  if missing:
    raise base.FetchError(
        f"{mirror.url} lacks {len(missing)} of the dataset's {len(manifest)}"
        f" files, e.g. {missing[0]}.")


def _fetch_files(mirror: Files, staging: pathlib.Path,
                 manifest: Mapping[str, str]) -> None:
  hashes = mirror.sha256 or manifest
  for relpath in sorted(manifest):
    download_file(mirror.base_url + relpath, staging / relpath,
                  hashes[relpath])


def _publish(staging: pathlib.Path, target: pathlib.Path,
             present: Callable[[pathlib.Path], bool]) -> None:
  """Renames the complete `staging` folder to `target`."""
  if target.is_dir() and not any(target.iterdir()):
    target.rmdir()  # An empty folder (e.g. made for data_dir) is replaced.
  try:
    os.rename(staging, target)
  except OSError:
    if present(target):  # Another process fetched it meanwhile.
      return
    raise base.FetchError(
        f"{target} exists but holds no complete copy; remove it (or choose"
        " another data_dir) and run again.") from None


def fetch(name: str, target: pathlib.Path | str | None = None, *,
          mirrors: Sequence[Mirror] | None = None) -> pathlib.Path:
  """Downloads dataset `name`'s files, verified, into `target`.

  Args:
    name: 'fashion_mnist', 'fsdd' or 'uci_hapt'.
    target: the dataset folder to create; default `~/.cache/contrastive/
      <name>`. A copy already there is kept.
    mirrors: override the dataset's mirrors (tests, local mirrors).

  Returns:
    `target`, holding every file of `checksums/<name>.sha256`.

  Raises:
    FetchError: every mirror failed; the message gives each one's reason.
  """
  spec = _spec(name)
  target = pathlib.Path(target).expanduser() if target is not None else (
      cache_folder(name))
  if spec.present(target):
    return target
  manifest = read_manifest(name)
  target.parent.mkdir(parents=True, exist_ok=True)
  errors = []
  for mirror in mirrors if mirrors is not None else spec.mirrors:
    staging = pathlib.Path(tempfile.mkdtemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    try:
      logging.info("fetching %s from %s", name,
                   getattr(mirror, "url", None) or mirror.base_url)
      if isinstance(mirror, Archive):
        _fetch_archive(mirror, staging, manifest)
      else:
        _fetch_files(mirror, staging, manifest)
      _publish(staging, target, spec.present)
      return target
    except base.FetchError as e:
      errors.append(str(e))
    finally:
      shutil.rmtree(staging, ignore_errors=True)
  if len(errors) == 1:
    raise base.FetchError(f"{name}: {errors[0]}")
  raise base.FetchError(
      f"{name}: no mirror worked:\n" + "\n".join(f"  - {e}" for e in errors))
