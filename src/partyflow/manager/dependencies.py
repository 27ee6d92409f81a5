"""A pack's Python dependencies: resolved against the target environment before anything is installed.

A pack's requirements may silently downgrade torch or break the host itself, so every install first runs the
resolver in dry-run mode (uv when present, pip otherwise), compares the plan with what is installed, and refuses
any change to an installed package or any violation of a protected package (torch, numpy and partyflow's own
requirements by default) unless the caller allows conflicts. Wheels come from the home's wheelhouse/ first, and
offline when the wheelhouse (and uv's cache) can satisfy the requirements. The report records what changed so a
failed pack install can take it back.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from partyflow.config import Home, Settings
from partyflow.manager.errors import ManagerError

DEFAULT_PROTECTED = ("torch", "torchvision", "torchaudio", "numpy")
DEFAULT_TIMEOUT = 900.0
_PLAN_LINE = re.compile(r"^\s*([+-])\s+([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?:==|\s@\s)\s*(\S+)")


class DependencyError(ManagerError):
    """Requirements that cannot be read, resolved or installed; nothing was changed."""


@dataclass(frozen=True)
class Conflict:
    """One package the install would break: an installed version it changes, or a protected pin it violates."""

    package: str
    installed: str | None
    wanted: str | None
    reason: str

    def __str__(self) -> str:
        change = f"{self.installed or 'absent'} -> {self.wanted or 'removed'}"
        return f"{self.package} {change} ({self.reason})"


class DependencyConflict(DependencyError):
    def __init__(self, pack: str, conflicts: Sequence[Conflict]) -> None:
        self.conflicts = tuple(conflicts)
        super().__init__(f"installing the dependencies of {pack!r} would break: "
                         + "; ".join(map(str, conflicts)), pack=pack,
                         hint="pass --allow-conflicts to install anyway", user_error=True)


@dataclass(frozen=True)
class Installer:
    """Which tool runs the resolver, and where wheels come from."""

    tool: str                      # "uv" or "pip"
    command: tuple[str, ...]       # the argv prefix up to (excluding) the `pip` subcommand's verb
    python: str
    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    no_index: bool = False
    timeout: float = DEFAULT_TIMEOUT
    extra_index_urls: tuple[str, ...] = ()  # e.g. PyTorch's CPU wheels on machines without a GPU

    @classmethod
    def for_home(cls, home: Home, python: str = sys.executable) -> Installer:
        conf = Settings.load(home).raw.get("manager", {})
        choice = str(conf.get("installer", "auto"))
        uv = find_uv() if choice in ("auto", "uv") else None
        if choice == "uv" and uv is None:
            raise DependencyError("[manager] installer = 'uv' but no uv binary was found",
                                  hint="pip install uv, or set installer = 'auto'")
        links = [str(home.wheelhouse)] if home.wheelhouse.is_dir() else []
        links += [str(p) for p in conf.get("find_links", ())]
        common = dict(python=python, find_links=tuple(links), index_url=conf.get("index_url"),
                      no_index=bool(conf.get("no_index", False)),
                      timeout=float(conf.get("pip_timeout", DEFAULT_TIMEOUT)))
        if uv is not None:
            return cls(tool="uv", command=(uv, "pip"), **common)
        return cls(tool="pip", command=(sys.executable, "-m", "pip", "--python", python), **common)

    def source_args(self, offline: bool) -> list[str]:
        args = [a for link in self.find_links for a in ("--find-links", link)]
        if self.no_index or (offline and self.tool == "pip"):
            args.append("--no-index")
        elif offline:
            args.append("--offline")
        elif self.index_url:
            args += ["--index-url", self.index_url]
        if not (self.no_index or offline):
            # uv prefers extra indexes over the default one; pip takes the highest version, and a `+cpu`
            # local version sorts above the plain one
            args += [a for url in self.extra_index_urls for a in ("--extra-index-url", url)]
        return args

    def run(self, verb: str, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        argv = [*self.command, verb, *(["--python", self.python] if self.tool == "uv" else []), *args]
        env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_NO_PROGRESS": "1"}
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, env=env,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise DependencyError(f"{self.tool} {verb} took longer than {self.timeout:.0f}s",
                                  hint="raise [manager] pip_timeout") from exc

    def plan(self, requirements: Sequence[str], *, reinstall: bool = False) -> tuple[dict[str, str], bool]:
        """Dry-run the install: {package: version it would install}, and whether it resolved offline."""
        extra = ["--reinstall"] if reinstall and self.tool == "uv" else []
        extra += ["--force-reinstall"] if reinstall and self.tool == "pip" else []
        attempts = [True] if self.no_index else [True, False] if self.find_links or self.tool == "uv" else [False]
        last: subprocess.CompletedProcess[str] | None = None
        for offline in attempts:
            if self.tool == "uv":
                last = self.run("install", ["--dry-run", *extra, *self.source_args(offline), *requirements])
                if last.returncode == 0:
                    return _parse_uv_plan(last.stdout + last.stderr), offline
            else:
                last = self.run("install", ["--dry-run", "--quiet", "--report", "-", *extra,
                                            *self.source_args(offline), *requirements])
                if last.returncode == 0:
                    return _parse_pip_report(last.stdout), offline
        assert last is not None
        raise DependencyError("cannot resolve " + ", ".join(requirements) + ": " + _tail(last),
                              hint="add the missing wheels to the home's wheelhouse/ or check the versions",
                              user_error=True)

    def install(self, requirements: Sequence[str], *, offline: bool, reinstall: bool = False) -> None:
        extra = (["--reinstall"] if self.tool == "uv" else ["--force-reinstall"]) if reinstall else []
        quiet = [] if self.tool == "uv" else ["--quiet"]
        result = self.run("install", [*quiet, *extra, *self.source_args(offline), *requirements])
        if result.returncode != 0:
            raise DependencyError(f"{self.tool} install failed: {_tail(result)}")

    def uninstall(self, names: Iterable[str]) -> None:
        names = list(names)
        if names:
            self.run("uninstall", (["-y"] if self.tool == "pip" else []) + names)


@dataclass
class DependencyReport:
    """What one install changed in one environment; `rollback()` takes it back."""

    pack: str
    python: str
    tool: str
    requirements: list[str] = field(default_factory=list)
    installed: dict[str, str] = field(default_factory=dict)           # new packages: name -> version
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (old, new), with allow_conflicts
    conflicts: list[Conflict] = field(default_factory=list)           # allowed conflicts
    skipped: list[str] = field(default_factory=list)                  # requirement-file options not followed
    offline: bool = True
    _installer: Installer | None = field(default=None, repr=False, compare=False)

    @property
    def changed_anything(self) -> bool:
        return bool(self.installed or self.changed)

    def rollback(self) -> None:
        """Uninstall what was added and put changed packages back at their old versions (from the wheelhouse
        or the resolver's cache)."""
        if self._installer is None or not self.changed_anything:
            return
        self._installer.uninstall(self.installed)
        if self.changed:
            pins = [f"{name}=={old}" for name, (old, _new) in self.changed.items()]
            try:
                self._installer.install(pins, offline=True)
            except DependencyError:
                self._installer.install(pins, offline=False)
        self.installed, self.changed = {}, {}

    def to_dict(self) -> dict[str, Any]:
        return {"pack": self.pack, "python": self.python, "tool": self.tool, "requirements": self.requirements,
                "installed": self.installed, "changed": {k: list(v) for k, v in self.changed.items()},
                "conflicts": [str(c) for c in self.conflicts], "skipped": self.skipped, "offline": self.offline}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, home: Home) -> DependencyReport:
        """Rebuild a report recorded in a journal, so a crashed install's dependencies can still be undone."""
        python = str(data.get("python") or sys.executable)
        return cls(pack=str(data.get("pack", "")), python=python, tool=str(data.get("tool", "")),
                   requirements=list(data.get("requirements", ())), installed=dict(data.get("installed", {})),
                   changed={k: (v[0], v[1]) for k, v in dict(data.get("changed", {})).items()},
                   skipped=list(data.get("skipped", ())), offline=bool(data.get("offline", True)),
                   _installer=Installer.for_home(home, python))


def rollback(data: Mapping[str, Any], *, home: Home) -> None:
    """Undo a recorded DependencyReport (`to_dict()` output): the journal's dependency rollback hook."""
    DependencyReport.from_dict(data, home=home).rollback()


def find_uv() -> str | None:
    """The uv binary: the one the `uv` Python package ships (a pinned dependency), else one on PATH."""
    try:
        import uv  # type: ignore[import-not-found]

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def read_requirements(pack_dir: Path) -> tuple[list[str], list[str]]:
    """The pack's requirements, deduplicated, and the requirement-file lines that were not followed (index
    options a pack must not set for the host).

    As ComfyUI-Manager does, requirements.txt is what a pack installs with; pyproject.toml's
    [project].dependencies (registry metadata, often stale or pinned differently) are read only when the pack
    has no requirements.txt.
    """
    reqs: list[str] = []
    skipped: list[str] = []
    txt = pack_dir / "requirements.txt"
    if txt.is_file():
        _read_txt(txt, pack_dir.resolve(), reqs, skipped, depth=0)
        return list(dict.fromkeys(reqs)), skipped
    pyproject = pack_dir / "pyproject.toml"
    if pyproject.is_file():
        try:
            deps = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("dependencies", [])
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise DependencyError(f"{pyproject}: not valid TOML ({exc})", pack=pack_dir.name) from exc
        for dep in deps:
            reqs.append(_check(str(dep), f"{pyproject} [project].dependencies", pack_dir.name))
    return list(dict.fromkeys(reqs)), skipped


def protected_packages(home: Home) -> dict[str, SpecifierSet]:
    """Packages a pack may not change: `[manager] protected` (default torch, numpy) with optional specifiers,
    plus partyflow's own requirements when `[manager] protect_host` (default true)."""
    conf = Settings.load(home).raw.get("manager", {})
    found: dict[str, SpecifierSet] = {}
    for item in conf.get("protected", DEFAULT_PROTECTED):
        req = Requirement(str(item))
        found[canonicalize_name(req.name)] = req.specifier
    host_requirements = getattr(home, "host_requirements", None)
    if conf.get("protect_host", True) and host_requirements is not None:  # a ComfyUI target: ComfyUI's own needs
        for line in host_requirements():
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            name = canonicalize_name(req.name)
            found[name] = found.get(name, SpecifierSet()) & req.specifier
    elif conf.get("protect_host", True):
        try:
            host = importlib.metadata.requires("partyflow") or []
        except importlib.metadata.PackageNotFoundError:
            host = []
        for line in host:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                name = canonicalize_name(req.name)
                found[name] = found.get(name, SpecifierSet()) & req.specifier
    return found


def installed_packages(python: str = sys.executable) -> dict[str, str]:
    """{canonical name: version} of the distributions in `python`'s environment (needs no pip there)."""
    return {canonicalize_name(d.metadata["Name"]): d.version for d in _distributions(python)}


def already_satisfied(requirements: Sequence[str], python: str = sys.executable) -> bool:
    """Whether the environment satisfies `requirements` and, transitively, their own requirements: then there
    is nothing to resolve or install (the common case for a restore, or packs sharing dependencies)."""
    info = _interpreter(python)
    dists = {canonicalize_name(d.metadata["Name"]): d for d in _distributions(python)}
    pending = [(Requirement(r), "") for r in requirements]
    seen: set[tuple[str, str]] = set()
    while pending:
        req, extra = pending.pop()
        if req.marker is not None and not req.marker.evaluate({**info["markers"], "extra": extra}):
            continue
        if req.url:
            return False  # a direct reference: let the resolver decide
        name = canonicalize_name(req.name)
        dist = dists.get(name)
        if dist is None or not _satisfies(dist.version, req.specifier):
            return False
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            pending.extend((Requirement(r), wanted) for r in dist.requires or ())
    return True


def find_conflicts(plan: Mapping[str, str], installed: Mapping[str, str],
                   protected: Mapping[str, SpecifierSet]) -> list[Conflict]:
    """Every planned version that differs from the installed one, and every protected pin the plan violates."""
    conflicts = []
    for name, wanted in sorted(plan.items()):
        have = installed.get(name)
        spec = protected.get(name)
        if have is not None and have != wanted:
            reason = "protected" if spec is not None else "installed"
            conflicts.append(Conflict(name, have, wanted, f"{reason} package would change"))
        elif spec is not None and not _satisfies(wanted, spec):
            conflicts.append(Conflict(name, have, wanted, f"the host requires {name}{spec}"))
    return conflicts


TORCH_PACKAGES = frozenset({"torch", "torchvision", "torchaudio"})
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


def has_nvidia_gpu() -> bool:
    """Whether this machine has an NVIDIA driver (CUDA wheels are useless, and huge, without one)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def torch_index_url(home: Home, plan: Mapping[str, str], installed: Mapping[str, str]) -> str | None:
    """The index to take torch wheels from when a pack's install would add torch: PyTorch's CPU wheels on a
    machine without a GPU (`[manager] torch_index = "auto"`, the default), always (`"cpu"`), never (`"pypi"`),
    or a URL of the user's choice."""
    if not any(name in TORCH_PACKAGES and name not in installed for name in plan):
        return None
    choice = str(Settings.load(home).raw.get("manager", {}).get("torch_index", "auto"))
    if choice == "pypi":
        return None
    if choice == "cpu" or (choice == "auto" and not has_nvidia_gpu()):
        return CPU_TORCH_INDEX
    return choice if choice.startswith(("http://", "https://", "file://")) else None


def target_python(home: Home, python: str | None = None) -> str:
    """The interpreter whose environment packs run in: the argument, else `[manager] python` in config.toml
    (pointing the manager at a ComfyUI install's venv), else the one running partyflow."""
    if python:
        return python
    target = getattr(home, "python", None)  # a ComfyUI target (manager.target_home): the Python ComfyUI runs in
    if isinstance(target, str) and target:
        return target
    return str(Settings.load(home).raw.get("manager", {}).get("python") or sys.executable)


def install_requirements(requirements: Sequence[str], *, home: Home, pack: str = "", allow_conflicts: bool = False,
                         python: str | None = None, reinstall: bool = False) -> DependencyReport:
    """Resolve, check for conflicts, then install `requirements` into `python`'s environment."""
    python = target_python(home, python)
    installer = Installer.for_home(home, python)
    report = DependencyReport(pack=pack, python=python, tool=installer.tool, requirements=list(requirements),
                              _installer=installer)
    if not requirements or (not reinstall and already_satisfied(requirements, python)):
        return report
    before = installed_packages(python)
    plan, offline = installer.plan(requirements, reinstall=reinstall)
    torch_index = torch_index_url(home, plan, before)
    if torch_index is not None and not offline:
        installer = dataclasses.replace(installer, extra_index_urls=(torch_index,))
        report._installer = installer
        plan, offline = installer.plan(requirements, reinstall=reinstall)
    conflicts = find_conflicts(plan, before, protected_packages(home))
    if conflicts and not allow_conflicts:
        raise DependencyConflict(pack or ", ".join(requirements), conflicts)
    report.conflicts, report.offline = conflicts, offline
    if not plan:
        return report
    try:
        installer.install(requirements, offline=offline, reinstall=reinstall)
    finally:  # also on failure: record what did change so the rollback covers a partial install
        after = installed_packages(python)
        report.installed = {n: v for n, v in after.items() if n not in before}
        report.changed = {n: (before[n], v) for n, v in after.items() if n in before and before[n] != v}
    return report


def install_for_pack(pack_dir: Path, *, home: Home, allow_conflicts: bool = False,
                     python: str | None = None, reinstall: bool = False) -> DependencyReport:
    """Install a pack's requirements.txt and pyproject dependencies, refusing conflicts unless allowed.
    `python` defaults to `target_python(home)`."""
    requirements, skipped = read_requirements(pack_dir)
    report = install_requirements(requirements, home=home, pack=pack_dir.name, allow_conflicts=allow_conflicts,
                                  python=python, reinstall=reinstall)
    report.skipped = skipped
    return report


def missing_requirements(pack_dir: Path, installed: Mapping[str, str]) -> list[str]:
    """Requirements of a pack that the environment does not satisfy (absent, or the wrong version)."""
    requirements, _ = read_requirements(pack_dir)
    missing = []
    for line in requirements:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        have = installed.get(canonicalize_name(req.name))
        if have is None or not _satisfies(have, req.specifier):
            missing.append(line if have is None else f"{line} (installed: {have})")
    return missing


# ---- helpers -----------------------------------------------------------------------------------------------

def _read_txt(path: Path, root: Path, reqs: list[str], skipped: list[str], depth: int) -> None:
    if depth > 5:
        raise DependencyError(f"{path}: requirement files nest more than 5 deep", pack=root.name)
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ", "-r\t")):
            target = (path.parent / line.split(None, 1)[1].strip()).resolve()
            if root not in target.parents:
                raise DependencyError(f"{path}:{number}: includes {target}, outside the pack", pack=root.name)
            _read_txt(target, root, reqs, skipped, depth + 1)
        elif line.startswith("-"):
            skipped.append(f"{path.name}:{number}: {line}")
        else:
            reqs.append(_check(line, f"{path}:{number}", root.name))


def _check(line: str, where: str, pack: str) -> str:
    try:
        Requirement(line)
    except InvalidRequirement as exc:
        raise DependencyError(f"{where}: not a valid requirement {line!r} ({exc})", pack=pack,
                              user_error=True) from None
    return line


def _parse_uv_plan(output: str) -> dict[str, str]:
    plan: dict[str, str] = {}
    for line in output.splitlines():
        match = _PLAN_LINE.match(line)
        if match and match.group(1) == "+":
            plan[canonicalize_name(match.group(2))] = match.group(3)
    return plan


def _parse_pip_report(stdout: str) -> dict[str, str]:
    try:
        report = json.loads(stdout[stdout.index("{"):])
    except (ValueError, json.JSONDecodeError) as exc:
        raise DependencyError(f"pip's --report output could not be read: {exc}") from exc
    return {canonicalize_name(item["metadata"]["name"]): str(item["metadata"]["version"])
            for item in report.get("install", [])}


_INFO_SCRIPT = """
import json, os, platform, sys
impl = sys.implementation
version = f"{impl.version.major}.{impl.version.minor}.{impl.version.micro}"
print(json.dumps({"path": [p for p in sys.path if p], "markers": {
    "implementation_name": impl.name, "implementation_version": version, "os_name": os.name,
    "platform_machine": platform.machine(), "platform_release": platform.release(),
    "platform_system": platform.system(), "platform_version": platform.version(),
    "python_full_version": platform.python_version(), "python_version": ".".join(platform.python_version_tuple()[:2]),
    "platform_python_implementation": platform.python_implementation(), "sys_platform": sys.platform}}))
"""


@functools.lru_cache(maxsize=32)
def _interpreter(python: str) -> dict[str, Any]:
    """sys.path and marker values of an interpreter: asked once (a fact about that binary), then read in-process."""
    result = subprocess.run([python, "-c", _INFO_SCRIPT], capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise DependencyError(f"cannot inspect the interpreter {python}: {result.stderr.strip()[-300:]}")
    return json.loads(result.stdout)


def _distributions(python: str) -> list[importlib.metadata.Distribution]:
    """The target environment's distributions, read from its sys.path here (no subprocess after the first)."""
    path = None if python == sys.executable else _interpreter(python)["path"]
    dists = importlib.metadata.distributions() if path is None else importlib.metadata.distributions(path=path)
    found: dict[str, importlib.metadata.Distribution] = {}
    for dist in dists:
        name = dist.metadata["Name"]
        if name and canonicalize_name(name) not in found:  # the first on sys.path wins, as at import time
            found[canonicalize_name(name)] = dist
    return list(found.values())


def _satisfies(version: str, spec: SpecifierSet) -> bool:
    try:
        return spec.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return not spec


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    text = "\n".join(line for line in (result.stderr + result.stdout).strip().splitlines()
                     if not line.startswith("Using Python"))
    return text[-800:] or f"exit status {result.returncode}"
