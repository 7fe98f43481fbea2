"""Sphinx configuration of the API reference (built from the docstrings).

Build: `sphinx-build -W --keep-going -b html docs/api /tmp/contrastive_api`
(`tests/test_api_reference.py` runs it, so a broken docstring or a dangling
cross-reference fails the test suite, and CI).
"""

project = "contrastive"
author = "the contrastive authors"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # Google-style Args:/Returns:/Raises: sections.
]

# One page per module, generated from the package tree, so a new module is
# documented without editing this folder.
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {
    "members": True,
    "undoc-members": False,
    "show-inheritance": True,
    # A package's page documents what it defines, not what it re-exports
    # from its modules (each name has one page, so references resolve).
    "ignore-module-all": True,
}
# Signatures show the annotations as written; jax.Array etc. are not
# resolved against other projects' inventories (no network here).
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# "Attributes:" sections become field lists, not second descriptions of the
# dataclass fields that autodoc already documents.
napoleon_use_ivar = True

# The docstrings write code as `name` (single backquotes, as in Markdown):
# render it as code, not as RST's default interpreted text.
default_role = "literal"

templates_path = ["_templates"]
exclude_patterns = ["_build"]
html_theme = "alabaster"


def _examples_as_code(app, what, name, obj, options, lines):
  """Renders an `Example:` / `Examples:` section as a literal code block.

  The docstrings' examples are code, often with continuation lines indented
  deeper than the first; napoleon would treat them as prose (and docutils
  would complain about the indentation). Runs before napoleon.
  """
  del app, what, name, obj, options
  out, i = [], 0
  while i < len(lines):
    line = lines[i]
    if line.strip() in ("Example:", "Examples:"):
      indent = len(line) - len(line.lstrip())
      block = []
      j = i + 1
      while j < len(lines) and (
          not lines[j].strip()
          or len(lines[j]) - len(lines[j].lstrip()) > indent):
        block.append(lines[j])
        j += 1
      while block and not block[-1].strip():
        block.pop()
      pad = " " * indent
      out += [f"{pad}.. rubric:: {line.strip()[:-1]}", "", f"{pad}::", ""]
      out += [f"{pad}  {b}" if b.strip() else "" for b in block]
      out.append("")
      i = j
    else:
      out.append(line)
      i += 1
  lines[:] = out


def setup(app):
  app.connect("autodoc-process-docstring", _examples_as_code, priority=400)
