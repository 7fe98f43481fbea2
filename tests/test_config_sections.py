"""contrastive.config_sections: a section as a dict, and its field check."""
import ml_collections
import pytest

from contrastive import config_sections


def test_as_dict_takes_configdicts_mappings_and_none():
  cfg = ml_collections.ConfigDict({"a": 1, "b": {"c": 2}})
  assert config_sections.as_dict(cfg) == {"a": 1, "b": {"c": 2}}
  frozen = ml_collections.FrozenConfigDict({"a": 1})
  assert config_sections.as_dict(frozen) == {"a": 1}
  mapping = {"a": 1}
  out = config_sections.as_dict(mapping)
  assert out == mapping and out is not mapping
  assert config_sections.as_dict(None) == {}
  with pytest.raises(ValueError, match="config.model must be .*Mapping"):
    config_sections.as_dict("resnet18", "config.model")


def test_check_fields_names_unknown_section_and_valid_fields():
  config_sections.check_fields({"a": 1}, ("a", "b"), "config.x")
  with pytest.raises(ValueError) as err:
    config_sections.check_fields({"c": 1, "a": 2, "d": 3}, ("a", "b"),
                                 "config.x")
  assert str(err.value) == ("unknown fields ['c', 'd'] for config.x; valid"
                            " fields are: 'a', 'b'.")


def test_with_defaults_fills_in_and_checks():
  defaults = {"a": 1, "b": 2}
  assert config_sections.with_defaults({"b": 3}, defaults, "s") == {"a": 1,
                                                                    "b": 3}
  assert config_sections.with_defaults(None, defaults, "s") == defaults
  with pytest.raises(ValueError, match=r"\['z'\] for s"):
    config_sections.with_defaults({"z": 0}, defaults, "s")
