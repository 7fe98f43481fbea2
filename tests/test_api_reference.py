"""The API reference builds from the docstrings without a warning.

`docs/api` is a Sphinx project (autodoc, autosummary over the whole package,
napoleon for the Google-style sections). Building it with `-W` turns every
docutils complaint (a broken list or literal block in a docstring), every
reference that names two objects, and every module that fails to import
into a failure here, so CI keeps the reference readable.
"""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_api_reference_builds_without_warnings(tmp_path):
  # autosummary writes its generated pages into the source folder: build a
  # copy, so the test leaves the checkout as it found it.
  source = tmp_path / "api"
  shutil.copytree(ROOT / "docs" / "api", source,
                  ignore=shutil.ignore_patterns("_autosummary", "_build"))
  result = subprocess.run(
      [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q",
       "-b", "html", "-d", str(tmp_path / "doctrees"), str(source),
       str(tmp_path / "html")],
      capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
  assert result.returncode == 0, (
      "sphinx-build -W docs/api failed; fix the docstrings it names:\n"
      + result.stderr[-6000:])
  assert (tmp_path / "html" / "_autosummary" /
          "contrastive.losses.infonce.html").exists()
