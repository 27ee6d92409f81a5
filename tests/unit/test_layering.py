"""The layering rules of the style guide, checked on the source: `security` never imports `manager` (the manager
builds on the security policy, not the other way round), and no library package imports the built-in nodes
(nodes wrap libraries; a library that reached back into them would tie it to the node API and invite cycles).

Every file is parsed, not imported: `import x`, `from x import y` (relative ones resolved), imports inside
functions or `if TYPE_CHECKING:`, and names passed as string literals (or f-strings with a literal head) to
`importlib.import_module` / `__import__` all count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "partyflow"
LIBRARIES = ("llm", "knowledge", "media", "memory", "tools", "agents", "manager", "security", "store", "graph",
             "engine", "channels", "distributed")
_LOADERS = frozenset({"importlib.import_module", "import_module", "__import__", "importlib.__import__"})


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _literal_head(node: ast.expr) -> str | None:
    """The module name a loader is given, or its constant head for an f-string (`f"pkg.{name}"` gives `pkg.`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    return None


def imported_names(source: str, module: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, module name) for everything `source` (the module `module`) imports, in any of the forms above."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:  # `from partyflow import manager` imports partyflow.manager
                yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and _dotted(node.func) in _LOADERS and node.args:
            name = _literal_head(node.args[0])
            if name is not None:
                yield node.lineno, name


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def offenders(package: str, forbidden: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts)
        is_package = path.name == "__init__.py"
        if is_package:
            module = module.removesuffix(".__init__")
        for line, name in imported_names(path.read_text(encoding="utf-8"), module, is_package=is_package):
            if _within(name, forbidden):
                found.append(f"{path.relative_to(SRC)}:{line} imports {name}")
    return found


def test_the_detector_sees_every_form() -> None:
    source = '''
import partyflow.manager.errors
from partyflow.manager import signing
from partyflow import manager
from ..manager.keys import Keyring
import importlib
def late():
    from partyflow.manager.security import Risk
    importlib.import_module("partyflow.manager.signing")
    __import__("partyflow.manager")
    importlib.import_module(f"partyflow.manager.{name}")
from partyflow.managerial import nothing
importlib.import_module(variable)
'''
    names = [name for _, name in imported_names(source, "partyflow.security.policy")]
    hits = sorted(name for name in names if _within(name, "partyflow.manager"))
    assert hits == sorted(["partyflow.manager.errors", "partyflow.manager", "partyflow.manager.signing",
                    "partyflow.manager", "partyflow.manager.keys", "partyflow.manager.keys.Keyring",
                    "partyflow.manager.security", "partyflow.manager.security.Risk", "partyflow.manager.signing",
                    "partyflow.manager", "partyflow.manager."])
    package_names = [name for _, name in imported_names("from . import policy\nfrom .. import manager\n",
                                                        "partyflow.security", is_package=True)]
    assert "partyflow.security.policy" in package_names and "partyflow.manager" in package_names


def test_security_does_not_import_the_manager() -> None:
    assert offenders("security", "partyflow.manager") == []


@pytest.mark.parametrize("package", LIBRARIES)
def test_libraries_do_not_import_the_builtin_nodes(package: str) -> None:
    assert offenders(package, "partyflow.builtin_nodes") == []
