"""Test-wide set-up: eight simulated CPU devices, set before jax is imported."""
import os

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib

import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
  """`../shared/data`: skipped in a user's clone without it, never under CI."""
  if not SHARED_DATA.is_dir():
    message = (
        f"real datasets not found at {SHARED_DATA}; see README.md (Data) for"
        " where to download Fashion-MNIST, FSDD and UCI HAPT"
    )
    if os.environ.get("CI") == "true":
      pytest.fail(message + " (CI=true: data tests must not skip)")
    pytest.skip(message)
  return SHARED_DATA
