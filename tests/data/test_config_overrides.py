"""Every data option is settable from the command line, as launch.main
parses it (a locked config, where an absent field cannot be set)."""
from __future__ import annotations

import pathlib
import re
import sys
from unittest import mock

from absl import flags
from ml_collections import config_flags
import pytest

from configs import common
from contrastive import data

ROOT = pathlib.Path(__file__).resolve().parents[2]
OFFLINE = ("fashion_mnist", "fsdd", "uci_hapt")


def _parse(arg: str, *overrides: str):
  """The config of `configs/simclr.py:<arg>` after `overrides`, parsed like
  launch.main's --config flag."""
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values,
                                  lock_config=True)
  argv = ["main", f"--config={ROOT / 'configs/simclr.py'}:{arg}", *overrides]
  with mock.patch.object(sys, "argv", argv):  # config_flags reads sys.argv.
    values(argv)
  return values.config


def _documented_fields() -> set[str]:
  """`--config.data.<field>` named in README.md or in the data package's
  messages."""
  texts = [(ROOT / "README.md").read_text()] + [
      p.read_text() for p in (ROOT / "contrastive/data").glob("*.py")]
  return {m for t in texts for m in re.findall(r"--config\.data\.(\w+)", t)}


@pytest.mark.parametrize("size", ["small", "tiny"])
@pytest.mark.parametrize("dataset", OFFLINE)
def test_location_fields_override(dataset, size):
  config = _parse(f"{dataset},{size}", "--config.data.data_dir=/d/x",
                  "--config.data.source=files", "--config.data.download=True",
                  "--config.data.cache_dir=/c")
  assert (config.data.data_dir, config.data.source, config.data.download,
          config.data.cache_dir) == ("/d/x", "files", True, "/c")
  untouched = _parse(f"{dataset},{size}").data
  assert untouched.data_dir is None and untouched.download is False


def test_documented_fields_exist_on_every_offline_dataset():
  documented = _documented_fields()
  assert {"data_dir", "source", "download"} <= documented
  for dataset in OFFLINE:
    config = _parse(f"{dataset},tiny")
    assert documented <= set(config.data), dataset


@pytest.mark.parametrize("dataset", sorted(common.DATASETS))
def test_config_holds_every_reader_field(dataset):
  config = common.base_config(f"{dataset},tiny")
  assert set(config.data) == {"name", *data.config_fields(dataset)}


def test_reader_options_override_with_their_types():
  config = _parse("fsdd,tiny", "--config.data.held_out_speaker=theo",
                  "--config.data.test_indices=(0,9)")
  assert config.data.held_out_speaker == "theo"
  assert tuple(config.data.test_indices) == (0, 9)
  config = _parse("uci_hapt,tiny", "--config.data.window=64",
                  "--config.data.include_transitions=True")
  assert (config.data.window, config.data.include_transitions) == (64, True)


def test_the_config_s_data_builds_as_is(shared_data_dir):
  config = _parse("fsdd,tiny",
                  f"--config.data.data_dir={shared_data_dir / 'fsdd'}")
  assert len(data.build_dataset(config.data, "test")) == 300
