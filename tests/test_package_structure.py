"""The packages of `contrastive/` form a layered graph.

Reads every module's imports (top-level and inside functions) from its
syntax tree, so an import hidden in a function to dodge a cycle still
counts. Two rules:

- no cycle between packages (`contrastive.train` may use
  `contrastive.clustering`, or the reverse, never both);
- no private module (`contrastive.<pkg>._name`) imported from another
  package: what another package needs is public API.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "contrastive"


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT.parent).with_suffix("").parts
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def _imported_modules(path: pathlib.Path) -> set[str]:
  """Every dotted name `path` imports, relative imports made absolute."""
  name = _module_name(path)
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = package.split(".")
        base = base[: len(base) - (node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
      else:
        module = node.module or ""
      found.add(module)
      # `from contrastive.losses import _common` imports a module too.
      found.update(f"{module}.{alias.name}" for alias in node.names)
  return found


def _package_of(module: str) -> str | None:
  """`contrastive.<pkg>` for a module inside a sub-package, else None."""
  parts = module.split(".")
  if len(parts) < 2 or parts[0] != "contrastive":
    return None
  if not (ROOT / parts[1]).is_dir():
    return None  # a top-level module such as contrastive/checks.py
  return parts[1]


def _package_graph():
  edges: dict[str, set[str]] = {}
  private: set[str] = set()
  for path in sorted(ROOT.rglob("*.py")):
    source_package = _package_of(_module_name(path))
    for module in _imported_modules(path):
      target_package = _package_of(module)
      if target_package is None or target_package == source_package:
        continue
      if source_package is not None:
        edges.setdefault(source_package, set()).add(target_package)
      parts = module.split(".")
      if len(parts) > 2 and parts[2].startswith("_") and (
          ROOT / parts[1] / (parts[2] + ".py")).exists():
        private.add(f"{path.relative_to(ROOT.parent)} imports "
                    f"{'.'.join(parts[:3])}")
  return edges, sorted(private)


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
  state: dict[str, int] = {}  # 1: on the current path, 2: finished

  def visit(node, path):
    state[node] = 1
    for nxt in sorted(edges.get(node, ())):
      if state.get(nxt) == 1:
        return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
      if nxt not in state:
        cycle = visit(nxt, path + [nxt])
        if cycle:
          return cycle
    state[node] = 2
    return None

  for start in sorted(edges):
    if start not in state:
      cycle = visit(start, [start])
      if cycle:
        return cycle
  return None


def test_the_walk_sees_imports_inside_functions(tmp_path):
  module = ROOT / "train" / "loop.py"
  assert any(m.startswith("contrastive.") for m in _imported_modules(module))


def test_find_cycle_reports_a_planted_cycle():
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c",
                                                               "a"]
  assert _find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_import_cycle_between_packages():
  edges, _ = _package_graph()
  cycle = _find_cycle(edges)
  if cycle:
    pytest.fail(
        "import cycle between packages of contrastive/: "
        + " -> ".join(cycle)
        + ". Move the shared code to the lower package, or pass it in as an "
        "argument.")


def test_no_private_module_imported_from_another_package():
  _, private = _package_graph()
  assert not private, (
      "private modules used across packages (make the helper public, or "
      "move it): " + "; ".join(private))
