"""`python -m contrastive.data.fetch NAME`: make a dataset available where
its reader looks.

Reports a copy already found (`sources.find`); else, for a dataset with a
Debian package (Fashion-MNIST) and run as root where apt exists, installs
it, which works on machines that reach only PyPI and Debian; else downloads
the publisher's files, each checked by SHA-256 (`sources.fetch`). The
command the readers' missing-data message names. Kept apart from
`sources`, which the package imports, so that `-m` runs a fresh module.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Sequence

from contrastive.data import base
from contrastive.data import sources


def _apt_install(package: str, run=subprocess.run) -> bool:
  """`apt-get install -y PACKAGE` (after `apt-get update` if the package is
  unknown to the local lists); True on success."""
  env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
  install = ["apt-get", "install", "-y", "--no-install-recommends", package]
  print(f"running: {' '.join(install)}", flush=True)
  if run(install, env=env, check=False).returncode == 0:
    return True
  print("running: apt-get update", flush=True)
  run(["apt-get", "update"], env=env, check=False)
  return run(install, env=env, check=False).returncode == 0


def main(argv: Sequence[str] | None = None, *, run=subprocess.run) -> int:
  """The command line (module docstring); returns the exit status."""
  parser = argparse.ArgumentParser(
      prog="python -m contrastive.data.fetch",
      description="Make a dataset available where its reader looks: report"
      " a copy already found, else install its Debian package (as root),"
      " else download the publisher's files (checked by SHA-256).")
  parser.add_argument("name", choices=sorted(sources.SPECS))
  parser.add_argument("--data_dir", help="fetch into this folder (the"
                      " config's data.data_dir) instead of the cache")
  parser.add_argument("--cache_dir", help="the cache root (default"
                      f" {base.default_cache_root()})")
  parser.add_argument("--no_apt", action="store_true",
                      help="download even where a Debian package exists")
  parser.add_argument("--manifest_from", metavar="FOLDER",
                      help="print the SHA-256 manifest of FOLDER's copy and"
                      " exit (how checksums/NAME.sha256 was made)")
  args = parser.parse_args(argv)
  spec = sources.SPECS[args.name]
  if args.manifest_from:
    sys.stdout.write(
        sources.manifest_of(args.name, pathlib.Path(args.manifest_from)))
    return 0
  found = sources.find(args.name, args.data_dir, args.cache_dir)
  if found is not None:
    print(f"{args.name}: found at {found}")
    return 0
  if (args.data_dir is None and spec.debian_package and not args.no_apt
      and shutil.which("apt-get") and os.geteuid() == 0):
    if _apt_install(spec.debian_package, run=run):
      found = sources.find(args.name, None, args.cache_dir)
      if found is not None:
        print(f"{args.name}: installed {spec.debian_package}, at {found}")
        return 0
    print(f"{args.name}: apt-get could not install {spec.debian_package};"
          " downloading the publisher's files instead.", flush=True)
  target = (pathlib.Path(args.data_dir) if args.data_dir is not None
            else sources.cache_folder(args.name, args.cache_dir))
  print(f"{args.name}: downloading into {target}", flush=True)
  try:
    sources.fetch(args.name, target)
  except base.FetchError as e:
    hint = ""
    if spec.debian_package and args.data_dir is None:
      hint = (f"\nOn Debian or Ubuntu, as root, `apt-get install"
              f" {spec.debian_package}` installs it without the internet.")
    print(f"error: {e}{hint}", file=sys.stderr)
    return 1
  print(f"{args.name}: downloaded and verified, at {target}")
  return 0


if __name__ == "__main__":
  import logging  # pylint: disable=g-import-not-at-top
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  sys.exit(main())
