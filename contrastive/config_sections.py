"""Config sections as plain dicts, and the one check of their field names.

A config section (`config.model`, `config.data`, `config.mcl`, ...) arrives
as an `ml_collections.ConfigDict`, a `FrozenConfigDict`, a plain mapping
or, for optional sections, None. Every builder that reads one does the same
two things, here once:

- `as_dict(section, name)`: the section as a new `dict` (None gives `{}`);
- `check_fields(fields, valid, name)`: a ValueError naming the unknown
  fields, the section and the valid fields, so that a typo fails at start-up
  with the fix in the message.

`with_defaults` does both and fills in the defaults. This module imports no
part of the project, so every package may use it.

Example:
  >>> with_defaults({'num_stages': 3}, {'num_stages': 2, 'fallback': 'all'},
  ...               'config.mcl')
  {'num_stages': 3, 'fallback': 'all'}
  >>> check_fields({'stages': 3}, ('num_stages',), 'config.mcl')
  ValueError: unknown fields ['stages'] for config.mcl; valid fields are: ...
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping


def as_dict(section: Any, name: str = "config") -> dict[str, Any]:
  """`section` (a ConfigDict, a mapping or None) as a new top-level dict.

  Nested ConfigDicts become dicts too (`to_dict`); a mapping is copied one
  level deep.

  Raises:
    ValueError: `section` is neither; the message names the section.
  """
  if section is None:
    return {}
  if hasattr(section, "to_dict"):  # ml_collections.(Frozen)ConfigDict
    return dict(section.to_dict())
  if isinstance(section, Mapping):
    return dict(section)
  raise ValueError(
      f"{name} must be an ml_collections.ConfigDict or a mapping (a"
      f" Mapping), got {type(section).__name__}: {section!r}.")


def unknown_fields(fields: Iterable[str], valid: Iterable[str]) -> list[str]:
  """The names of `fields` that `valid` lacks, sorted."""
  return sorted(set(fields) - set(valid))


def check_fields(fields: Iterable[str], valid: Iterable[str], name: str, *,
                 phrase: str = "unknown fields") -> None:
  """Raises ValueError if `fields` holds a name that `valid` lacks.

  Args:
    fields: the field names given (a mapping's keys will do).
    valid: the field names the section accepts, in the order to list them.
    name: what the section is, for the message: 'config.mcl', "model
      'resnet18'".
    phrase: the message's first words (kept by callers whose wording is
      documented or tested).

  Raises:
    ValueError: `{phrase} [...] for {name}; valid fields are: 'a', 'b'.`
  """
  valid = list(valid)
  unknown = unknown_fields(fields, valid)
  if unknown:
    raise ValueError(
        f"{phrase} {unknown} for {name}; valid fields are:"
        f" {', '.join(repr(v) for v in valid)}.")


def with_defaults(section: Any, defaults: Mapping[str, Any], name: str
                  ) -> dict[str, Any]:
  """`section` over `defaults` (its fields checked against them).

  Raises:
    ValueError: `section` is not a mapping, or has a field `defaults`
      lacks.
  """
  fields = as_dict(section, name)
  check_fields(fields, defaults, name)
  return {**defaults, **fields}
