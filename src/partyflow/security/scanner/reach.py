"""Which code of a pack runs when the pack is imported, which runs later, and which the pack never runs at all.

A scanner that treats every module-level line of every file as "runs at import" cries wolf on standalone scripts
and tests, and one that only looks at a module's own top level misses `__init__.py` calling `install.setup()` in
another file. This pass follows what really happens when ComfyUI (or partyflow) loads a pack:

- entries: the pack's `__init__.py` (or the single-file pack, or, for a folder that is not a package such as an
  unpacked wheel, each top-level module and package), `prestartup_script.py` (run at every start) and the install
  scripts `install.py` / `setup.py` (run when the pack is installed);
- a module that runs imports other modules of the pack (relative imports, absolute ones naming the pack's own
  top-level modules, `importlib.import_module` of a literal) and their packages' `__init__` files run too;
- in a scope that runs, calls to the pack's functions (`f()`, `module.f()`, `Class()` -> `__init__`,
  `self.method()`), functions handed to something that calls them right away (`threading.Thread(target=f)`,
  `asyncio.run`, `executor.submit`), and decorators run; function bodies that are only defined (route handlers,
  node methods, callbacks) do not;
- code loaded by a computed name (`importlib.import_module(name)` in a loop over a folder) is assumed to load every
  module under the loading module's folder: unresolved loading must never hide code.

The result per module (`ModuleFacts.reach`): "import" (runs when the pack is imported), "install" (an install
script, not imported), "on_demand" (imported or launched by the pack's code, but only when that code runs),
"script" (nothing in the pack runs it and it is recognisably standalone: a `__main__` block, a tests/examples/scripts
folder, or named by one of the pack's shell or batch scripts) and "orphan" (nothing runs it, not recognisably a
script). Scopes that run at import (or when an install script runs) get `import_time = True`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from partyflow.security.scanner.pyfacts import ImportFact, LoadFact, ModuleFacts

__all__ = ["IMPORT", "INSTALL", "ON_DEMAND", "ORPHAN", "SCRIPT", "resolve", "script_names", "single"]

IMPORT, INSTALL, ON_DEMAND, SCRIPT, ORPHAN = "import", "install", "on_demand", "script", "orphan"
_RANK = {IMPORT: 3, INSTALL: 2, ON_DEMAND: 1}
_SCRIPT_DIRS = frozenset({"test", "tests", "testing", "example", "examples", "script", "scripts", "doc", "docs",
                          "benchmark", "benchmarks", "bench", "demo", "demos", "sample", "samples"})
_NOT_REFERENCES = frozenset({"__init__.py", "setup.py", "install.py", "__main__.py"})
_SCRIPT_NAME = re.compile(r"[\w./\\-]+\.pyw?\b")
_MAX_CHASE = 20   # re-export chains followed this deep (cycles end here too)
_CLASS = ".<class>"

Binding = tuple[str, tuple[str, ...], str]   # ("mod", module parts, "") or ("sym", module parts, name)


def single(facts: ModuleFacts) -> ModuleFacts:
    """One module on its own (a source string, a member of a wheel): it is what gets imported (or, named like an
    install script, what gets run)."""
    entry = INSTALL if facts.install_script else IMPORT
    _Pack({facts.relpath: facts}, package=False, root_name="", user_scripts=set(), entries={facts.relpath: entry})\
        .run()
    return facts


def resolve(modules: dict[str, ModuleFacts], *, package: bool, root_name: str,
            user_scripts: Iterable[str] = ()) -> None:
    """Decide, for every module of a pack (relpath -> facts, relpaths relative to the pack root), how the pack runs
    it; sets `reach`, `install_script` and each scope's `import_time`.

    `package` says the pack root has an `__init__.py` (a ComfyUI pack folder or a library's package folder);
    `root_name` is the folder's name, so absolute imports of the pack by its own name resolve; `user_scripts` are
    file names that the pack's shell and batch scripts run (`python api.py`)."""
    entries: dict[str, str] = {}
    for relpath in modules:
        parts = relpath.split("/")
        name = parts[-1].lower()
        if len(parts) == 1 and name in ("install.py", "setup.py"):
            entries[relpath] = INSTALL
        elif len(parts) == 1 and name == "prestartup_script.py":
            # ComfyUI runs it before loading packs, the hook packs use to finish installing: install-like
            entries[relpath] = INSTALL
        elif package and relpath == "__init__.py":
            entries[relpath] = IMPORT
        elif not package and _top_level(parts) and not _test_name(name) and name not in ("conftest.py",):
            entries[relpath] = IMPORT
    _Pack(modules, package=package, root_name=root_name, user_scripts=set(user_scripts), entries=entries).run()


def script_names(text: str) -> set[str]:
    """Python files a shell, batch or PowerShell script runs (`python api.py`, `streamlit run app.py`)."""
    return {match.replace("\\", "/").rsplit("/", 1)[-1] for match in _SCRIPT_NAME.findall(text)}


def _top_level(parts: list[str]) -> bool:
    return (len(parts) == 1 and parts[0].endswith((".py", ".pyw"))) or (len(parts) == 2 and parts[1] == "__init__.py")


def _test_name(name: str) -> bool:
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


def _parts(relpath: str) -> tuple[str, ...]:
    parts = relpath.removesuffix(".pyw").removesuffix(".py").split("/")
    return tuple(parts[:-1]) if parts[-1] == "__init__" else tuple(parts)


@dataclass
class _Pack:
    modules: dict[str, ModuleFacts]
    package: bool
    root_name: str
    user_scripts: set[str]
    entries: dict[str, str]
    by_parts: dict[tuple[str, ...], str] = field(default_factory=dict)
    level: dict[tuple[str, str], int] = field(default_factory=dict)
    todo: list[tuple[str, str, int]] = field(default_factory=list)
    bindings: dict[str, dict[str, Binding]] = field(default_factory=dict)
    by_name: dict[str, list[str]] = field(default_factory=dict)        # file name -> relpaths
    folders: set[str] = field(default_factory=set)                      # "a/", "a/b/" for every module's folders
    loaded: set[tuple[tuple[str, ...], int]] = field(default_factory=set)  # computed loads already followed

    def run(self) -> None:
        for relpath in self.modules:
            if "!" not in relpath:
                self.by_parts.setdefault(_parts(relpath), relpath)
                self.by_name.setdefault(relpath.rsplit("/", 1)[-1], []).append(relpath)
                parts = relpath.split("/")[:-1]
                self.folders.update("/".join(parts[:size]) + "/" for size in range(1, len(parts) + 1))
        for relpath, kind in self.entries.items():
            self._visit(relpath, "<module>", _RANK[kind])
            if kind == INSTALL:
                self._visit(relpath, "<main>", _RANK[kind])
        while self.todo:
            relpath, qual, rank = self.todo.pop()
            if self.level.get((relpath, qual), 0) == rank:
                self._process(relpath, qual, rank)
        self._classify()

    # --- the walk ---------------------------------------------------------------------------------------------

    def _visit(self, relpath: str, qual: str, rank: int) -> None:
        if relpath not in self.modules or self.level.get((relpath, qual), 0) >= rank:
            return
        self.level[(relpath, qual)] = rank
        self.todo.append((relpath, qual, rank))

    def _process(self, relpath: str, qual: str, rank: int) -> None:
        facts = self.modules[relpath]
        if qual == "<module>":
            parts = _parts(relpath)
            for size in range(len(parts)):   # importing a.b.c runs a/__init__ and a/b/__init__ first
                parent = self.by_parts.get(parts[:size])
                if parent is not None and parent != relpath and (size or self.package):
                    self._visit(parent, "<module>", rank)
            for scope in facts.scopes:       # code in function bodies runs when those functions are called
                if scope.name not in ("<module>", "<main>"):
                    self._edges_of(relpath, scope.name, scope.imports, scope.loads, _RANK[ON_DEMAND])
            for _, text in facts.strings:    # scripts the module names (`[sys.executable, "helper.py"]`)
                if text.strip().lower().endswith((".py", ".pyw")):
                    for target in self._files(relpath, text.strip()):
                        self._visit(target, "<module>", _RANK[ON_DEMAND])
                        self._visit(target, "<main>", _RANK[ON_DEMAND])
        for scope in facts.scopes_named(qual):
            self._edges_of(relpath, qual, scope.imports, scope.loads, rank)
            for ref in sorted(scope.refs):
                decorator = ref.startswith("@")
                for target, target_qual in self._callee(relpath, qual, ref.lstrip("@")):
                    self._visit(target, target_qual, rank)
                    if decorator:  # a decorator factory's inner decorator is applied right away as well
                        for inner in self.modules[target].functions:
                            if inner.startswith(target_qual + ".") and "." not in inner[len(target_qual) + 1:]:
                                self._visit(target, inner, rank)

    def _edges_of(self, relpath: str, qual: str, imports: list[ImportFact], loads: list[LoadFact],
                  rank: int) -> None:
        for fact in imports:
            for target in self._imported(relpath, fact):
                self._visit(target, "<module>", rank)
        for load in loads:
            if load.target is None:   # a computed load: follow each distinct set of folders once per rank
                prefixes = self._computed_prefixes(relpath, qual)
                if (prefixes, rank) in self.loaded:
                    continue
                self.loaded.add((prefixes, rank))
            for target in self._loaded(relpath, qual, load):
                self._visit(target, "<module>", rank)
                if load.kind == "script":
                    self._visit(target, "<main>", rank)

    # --- imports ----------------------------------------------------------------------------------------------

    def _package_of(self, relpath: str) -> tuple[str, ...]:
        parts = _parts(relpath)
        return parts if relpath.endswith("__init__.py") or relpath.endswith("__init__.pyw") else parts[:-1]

    def _absolute(self, dotted: str) -> tuple[str, ...] | None:
        """A dotted module name inside the pack: `pack.sub` by the pack's folder name (also under
        `custom_nodes.`), or `sub` when the pack puts its own folder on sys.path."""
        parts = tuple(p for p in dotted.split(".") if p)
        names = {self.root_name, self.root_name.replace("-", "_")} - {""}
        for index in range(len(parts) - 1, -1, -1):
            if parts[index] in names:
                return parts[index + 1:]
        if parts and (parts[0],) in self.by_parts:
            return parts
        return None

    def _module_parts(self, relpath: str, fact: ImportFact) -> tuple[str, ...] | None:
        if fact.level == 0:
            return self._absolute(fact.module)
        package = self._package_of(relpath)
        if fact.level - 1 > len(package):
            return None
        base = package[: len(package) - (fact.level - 1)]
        return base + tuple(p for p in fact.module.split(".") if p)

    def _with_parents(self, parts: tuple[str, ...]) -> Iterator[str]:
        for size in range(1, len(parts) + 1):
            found = self.by_parts.get(parts[:size])
            if found is not None:
                yield found

    def _imported(self, relpath: str, fact: ImportFact) -> list[str]:
        parts = self._module_parts(relpath, fact)
        if parts is None:
            return []
        found = list(self._with_parents(parts))
        if not parts and self.package:
            found.append(self.by_parts.get((), ""))
        for name, _ in fact.names:
            submodule = self.by_parts.get(parts + (name,))
            if submodule is not None:
                found.append(submodule)
            elif name == "*":
                found += [rel for p, rel in self.by_parts.items() if p[: len(parts)] == parts
                          and len(p) == len(parts) + 1]
        return [f for f in found if f]

    def _loaded(self, relpath: str, qual: str, load: LoadFact) -> list[str]:
        if load.target is None:
            return self._computed_load(relpath, qual)
        if load.kind in ("file", "script"):
            return self._files(relpath, load.target)
        target = load.target
        if target.startswith("\x00"):
            fact = ImportFact(len(target[1:]) - len(target[1:].lstrip(".")), target[1:].lstrip("."), (), "", 0)
        else:
            fact = ImportFact(0, target, (), "", 0)
        return self._imported(relpath, fact)

    def _computed_prefixes(self, relpath: str, qual: str) -> tuple[str, ...]:
        """Where a load by computed name (`for f in glob(join(here, "nodes", "*.py")): spec_from_file_location(...)`)
        may load from: the pack folders the loading function names (else those its module names), else everything
        under the loading module's folder. Over-approximate on purpose."""
        folder = relpath.rsplit("/", 1)[0] + "/" if "/" in relpath else ""
        facts = self.modules[relpath]
        for scopes in (facts.scopes_named(qual), facts.scopes_named("<module>")):
            named = {lit.strip("/\\.").replace("\\", "/") for scope in scopes for lit in scope.literals}
            prefixes = sorted(f"{folder}{name}/" for name in named if name)
            chosen = tuple(p for p in prefixes if p in self.folders)
            if chosen:
                return chosen
        return (folder,)

    def _computed_load(self, relpath: str, qual: str) -> list[str]:
        prefixes = self._computed_prefixes(relpath, qual)
        return [rel for rel in self.modules if "!" not in rel and rel.startswith(prefixes)]

    def _files(self, relpath: str, literal: str) -> list[str]:
        """Pack files a literal `dir/name.py` names, nearest to the naming module first."""
        name = literal.replace("\\", "/").rsplit("/", 1)[-1]
        if name in _NOT_REFERENCES:
            return []
        matches = [rel for rel in self.by_name.get(name, []) if rel != relpath]
        folder = relpath.rsplit("/", 1)[0] if "/" in relpath else ""
        near = [rel for rel in matches if (rel.rsplit("/", 1)[0] if "/" in rel else "") == folder]
        return near or matches

    # --- calls ------------------------------------------------------------------------------------------------

    def _bindings(self, relpath: str) -> dict[str, Binding]:
        """Module-level names bound by imports: `f` -> (sym, module, f), `mod` -> (mod, module)."""
        cached = self.bindings.get(relpath)
        if cached is not None:
            return cached
        found: dict[str, Binding] = {}
        for scope in self.modules[relpath].scopes_named("<module>"):
            found.update(self._bind(relpath, scope.imports))
        self.bindings[relpath] = found
        return found

    def _bind(self, relpath: str, imports: list[ImportFact]) -> dict[str, Binding]:
        found: dict[str, Binding] = {}
        for fact in imports:
            parts = self._module_parts(relpath, fact)
            if parts is None:
                continue
            if not fact.names:
                found[fact.local] = ("mod", parts, "")
                continue
            for name, local in fact.names:
                if parts + (name,) in self.by_parts:
                    found[local] = ("mod", parts + (name,), "")
                elif name != "*":
                    found[local] = ("sym", parts, name)
        return found

    def _callee(self, relpath: str, qual: str, ref: str) -> list[tuple[str, str]]:
        if "()." in ref:   # a method of an instance: `Cls().method` -> the class's method
            maker, method = ref.split("().", 1)
            if "." in method:
                return []
            found: list[tuple[str, str]] = []
            for target, target_qual in self._callee(relpath, qual, maker):
                if target_qual.endswith(_CLASS):
                    cls = target_qual.removesuffix(_CLASS)
                    found += [f for f in self._method(target, cls, method, 0) if f not in found]
            return found
        facts = self.modules[relpath]
        if ref.startswith("<lambda:"):
            return [(relpath, ref)]
        parts = ref.split(".")
        enclosing = qual.split(".") if qual not in ("<module>", "<main>") and not qual.startswith("<") else []
        if parts[0] in ("self", "cls") and len(parts) == 2:
            for size in range(len(enclosing) - 1, 0, -1):
                owner = ".".join(enclosing[:size])
                if owner in facts.classes:
                    return self._method(relpath, owner, parts[1], 0)
            return []
        if len(parts) == 1:
            for size in range(len(enclosing), -1, -1):   # nested defs first, then the module's
                candidate = ".".join([*enclosing[:size], parts[0]])
                if candidate in facts.functions:
                    return [(relpath, candidate)]
                if candidate in facts.classes:
                    return self._constructor(relpath, candidate)
        elif parts[0] in facts.classes:
            return self._method(relpath, parts[0], parts[1], 0) if len(parts) == 2 else []
        bindings = dict(self._bindings(relpath))
        for scope_name in [".".join(enclosing[:size]) for size in range(1, len(enclosing) + 1)]:
            for scope in facts.scopes_named(scope_name):
                bindings.update(self._bind(relpath, scope.imports))
        for size in range(len(parts), 0, -1):
            binding = bindings.get(".".join(parts[:size]))
            if binding is not None:
                return self._through(binding, parts[size:], 0)
        return []

    def _through(self, binding: Binding, rest: list[str], depth: int) -> list[tuple[str, str]]:
        kind, module, name = binding
        names = [name, *rest] if kind == "sym" else list(rest)
        while names and module + (names[0],) in self.by_parts:
            module, names = module + (names[0],), names[1:]
        target = self.by_parts.get(module)
        if target is None or not names:
            return []
        return self._symbol(target, names, depth)

    def _symbol(self, relpath: str, names: list[str], depth: int) -> list[tuple[str, str]]:
        facts = self.modules[relpath]
        head = names[0]
        if head in facts.functions and len(names) == 1:
            return [(relpath, head)]
        if head in facts.classes:
            return self._constructor(relpath, head) if len(names) == 1 else \
                self._method(relpath, head, names[1], depth) if len(names) == 2 else []
        binding = self._bindings(relpath).get(head)
        if binding is not None and depth < _MAX_CHASE:    # re-exported: `from .impl import f` in __init__
            return self._through(binding, names[1:], depth + 1)
        return []

    def _constructor(self, relpath: str, cls: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = [(relpath, cls + _CLASS)]   # names the class itself (no such scope)
        for method in ("__new__", "__init__", "__post_init__"):
            found += self._method(relpath, cls, method, 0)
        return found

    def _method(self, relpath: str, cls: str, method: str, depth: int) -> list[tuple[str, str]]:
        facts = self.modules[relpath]
        qual = f"{cls}.{method}"
        if qual in facts.functions:
            return [(relpath, qual)]
        node = facts.classes.get(cls)
        if node is None or depth >= _MAX_CHASE:
            return []
        found: list[tuple[str, str]] = []
        for base in node.bases:   # inherited from a class of the same module
            base_name = base.id if hasattr(base, "id") else ""
            if base_name in facts.classes and base_name != cls:
                found += self._method(relpath, base_name, method, depth + 1)
        return found

    # --- the verdict ------------------------------------------------------------------------------------------

    def _classify(self) -> None:
        for relpath, facts in self.modules.items():
            module_rank = max(self.level.get((relpath, "<module>"), 0), self.level.get((relpath, "<main>"), 0))
            if module_rank == _RANK[IMPORT]:
                facts.reach = IMPORT
            elif module_rank >= _RANK[INSTALL]:
                facts.reach = INSTALL
            elif module_rank == _RANK[ON_DEMAND]:
                facts.reach = ON_DEMAND
            elif self._standalone(relpath, facts):
                facts.reach = SCRIPT
            else:
                facts.reach = ORPHAN
            facts.install_script = facts.reach == INSTALL
            for scope in facts.scopes:
                scope.import_time = self.level.get((relpath, scope.name), 0) >= _RANK[INSTALL]

    def _standalone(self, relpath: str, facts: ModuleFacts) -> bool:
        parts = relpath.lower().split("/")
        return facts.main_guard or _test_name(parts[-1]) or any(p in _SCRIPT_DIRS for p in parts[:-1]) \
            or relpath.rsplit("/", 1)[-1] in self.user_scripts
