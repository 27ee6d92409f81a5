"""`scan()`: walk a pack folder, a single file or an installed pack, hand each file to the rules that understand
it, and collect one report.

It never imports or runs what it scans: Python is parsed with `ast`, pickles are read opcode by opcode, archives
are listed and read member by member in memory. Limits keep a hostile pack from making the scan itself the attack
(huge files, millions of files, symlink loops): what is not analysed is reported as skipped, and a Python file too
large to analyse is a finding, because hiding code in a giant module is an evasion.
"""

from __future__ import annotations

import ast
import os
import time
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from partyflow.config import Home, resolve_home
from partyflow.security.scanner import pyfacts, reach
from partyflow.security.scanner.bandit_adapter import bandit_version, run_bandit
from partyflow.security.scanner.catalog import RULES
from partyflow.security.scanner.model import Finding, ScanReport, Severity, SkippedFile
from partyflow.security.scanner.rules import (
    credentials,
    deserialization,
    dynamic_exec,
    filesystem,
    miner,
    network,
    obfuscation,
    pickles,
    process,
    requirements,
    textfiles,
)
from partyflow.security.scanner.rules.base import PyContext
from partyflow.security.scanner.vulndb import VulnDb

__all__ = ["ScanError", "ScanOptions", "scan", "scan_source"]

PY_RULES = (dynamic_exec.check, obfuscation.check, process.check, network.check, credentials.check,
            filesystem.check, deserialization.check, miner.check)
_SKIP_DIRS = frozenset({".git", "__pycache__", ".hg", ".svn", "node_modules", ".mypy_cache", ".pytest_cache"})
_TEXT_SUFFIXES = frozenset({".py", ".pyw", ".txt", ".md", ".rst", ".json", ".yaml", ".yml", ".toml", ".cfg",
                            ".ini", ".js", ".mjs", ".ts", ".html", ".htm", ".css", ".csv", ".xml", ".in",
                            ".sh", ".bash", ".zsh", ".bat", ".cmd", ".ps1", ".command", ".vbs", ".pth", ""})


_PACK_ANALYSIS_BYTES = 64 * 1024 * 1024   # Python source analysed together for reachability


class ScanError(ValueError):
    """The target cannot be scanned at all (missing path, unknown pack)."""


@dataclass(frozen=True)
class ScanOptions:
    """Limits and switches. The defaults scan a large real-world pack in seconds."""

    max_python_bytes: int = 4 * 1024 * 1024
    max_text_bytes: int = 8 * 1024 * 1024
    max_files: int = 20_000
    max_total_bytes: int = 512 * 1024 * 1024
    use_bandit: bool = True
    use_vulndb: bool = True


def scan(target: str | os.PathLike[str], *, home: Home | Path | str | None = None,
         options: ScanOptions = ScanOptions()) -> ScanReport:
    """Scan a pack folder, a single file, or the installed pack named `target` in `home`."""
    root = _locate(target, home)
    if root.is_symlink() and root.is_dir():   # a link to a pack (custom_nodes/x -> ~/src/x): scan what it points to
        root = root.resolve()
    home_obj = home if isinstance(home, Home) else Home(resolve_home(home)) if home is not None else None
    vulns = VulnDb.open(home_obj) if (options.use_vulndb and home_obj is not None) else None
    try:
        return _Scan(root, str(target), options, vulns).run()
    finally:
        if vulns is not None:
            vulns.close()


def scan_source(source: str, relpath: str = "<string>") -> list[Finding]:
    """Our Python rules on a source string (no bandit, no files): for tests and for code found inside archives."""
    return _python_findings(source, relpath, depth=0)


def _locate(target: str | os.PathLike[str], home: Home | Path | str | None) -> Path:
    path = Path(target)
    if path.exists() or path.is_symlink():
        return path
    text = str(target)
    if os.sep not in text and "/" not in text:
        root = home.root if isinstance(home, Home) else resolve_home(home)
        for folder in (root / "custom_nodes", root / "custom_nodes" / ".disabled"):
            for candidate in (folder / text, folder / f"{text}.py"):
                if candidate.exists():
                    return candidate
        raise ScanError(f"{text!r} is neither a path nor an installed pack in {root}")
    raise ScanError(f"{text}: no such file or folder")


class _Scan:
    def __init__(self, root: Path, target: str, options: ScanOptions, vulns: VulnDb | None) -> None:
        self.root = root
        self.options = options
        self.vulns = vulns
        self.report = ScanReport(target=target, root=str(root))
        self.python_files: list[tuple[Path, str]] = []
        self.python_sources: list[tuple[str, str]] = []   # (relpath, text): analysed together once all are read
        self.user_scripts: set[str] = set()
        self.total = 0

    def run(self) -> ScanReport:
        started = time.perf_counter()
        base = self.root.parent if self.root.is_file() else self.root
        for path in self._files():
            self._file(path, path.relative_to(base).as_posix())
        self._python_pack()
        if self.options.use_bandit:
            bandit = run_bandit(self.python_files)
            version = bandit_version()
            self.report.tools["bandit"] = version if bandit is not None and version else "not installed"
            self.report.add(bandit or [])
        self.report.tools["vulndb"] = self.vulns.meta.get("imported_at", "imported") if self.vulns else "none"
        self.report.seconds = time.perf_counter() - started
        return self.report.finish()

    def _files(self) -> Iterator[Path]:
        if not self.root.is_dir() or self.root.is_symlink():
            yield self.root
            return
        count = 0
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not self._escaping_link(here / d))
            for name in sorted(files):
                count += 1
                if count > self.options.max_files:
                    self.report.skipped.append(SkippedFile(str(here.relative_to(self.root)),
                                                           f"more than {self.options.max_files} files"))
                    return
                yield here / name

    def _escaping_link(self, path: Path) -> bool:
        """Symlinked folders are never followed; one pointing outside the pack is itself a finding."""
        if not path.is_symlink():
            return False
        self._link(path, path.relative_to(self.root).as_posix())
        return True

    def _link(self, path: Path, relpath: str) -> None:
        target = os.path.realpath(path)
        inside = Path(target).is_relative_to(os.path.realpath(self.root)) if self.root.is_dir() else False
        if not inside:
            self.report.add([Finding(relpath, 0, "PF107", Severity.HIGH, f"a symlink to {target}, outside the "
                                     "pack (the server serves pack files; this can expose or overwrite it)",
                                     RULES["PF107"].name)])

    def _file(self, path: Path, relpath: str) -> None:
        if path.is_symlink():
            self._link(path, relpath)
            return
        try:
            size = path.stat().st_size
        except OSError as exc:
            self.report.skipped.append(SkippedFile(relpath, f"unreadable: {exc.strerror}"))
            return
        name = path.name.lower()
        suffix = path.suffix.lower()
        if self.total + min(size, self.options.max_text_bytes) > self.options.max_total_bytes:
            self.report.skipped.append(SkippedFile(relpath, "scan budget of "
                                                   f"{self.options.max_total_bytes // 2**20} MiB used up"))
            return
        try:
            with open(path, "rb") as handle:
                head = handle.read(8)
                if suffix in (".py", ".pyw") and size > self.options.max_python_bytes:
                    self._too_large(relpath, size)
                    return
                if suffix == ".whl" or (suffix == ".zip" and size <= self.options.max_total_bytes):
                    self._archive(path, relpath)
                    return
                if suffix in pickles.PICKLE_SUFFIXES and (pickles.looks_like_pickle(head) or head[:4] == b"PK\x03\x04"):
                    if size <= pickles.MAX_PICKLE_BYTES or head[:4] == b"PK\x03\x04":
                        self._count(relpath, size)
                        data = path.read_bytes() if size <= pickles.MAX_PICKLE_BYTES else b""
                        self._pickle(relpath, data, path)
                    else:
                        self.report.skipped.append(SkippedFile(relpath, "pickle larger than the inspection limit"))
                    return
                if textfiles.is_native(name, head):
                    self._count(relpath, 0)
                    self.report.add([textfiles.check_native(relpath)])
                    return
                if size > self.options.max_text_bytes:
                    self.report.skipped.append(SkippedFile(relpath, f"{size // 2**20} MiB: larger than the text "
                                                           "limit, not analysed"))
                    return
                handle.seek(0)
                data = handle.read()
        except OSError as exc:
            self.report.skipped.append(SkippedFile(relpath, f"unreadable: {exc.strerror}"))
            return
        if b"\x00" in data[:4096] and suffix not in (".py", ".pyw"):
            self.report.skipped.append(SkippedFile(relpath, "binary data"))
            return
        self._count(relpath, size)
        self._content(path, relpath, data, size)

    def _count(self, relpath: str, size: int) -> None:
        self.report.files_scanned += 1
        self.report.bytes_scanned += size
        self.total += size

    def _too_large(self, relpath: str, size: int) -> None:
        self.report.add([Finding(relpath, 0, "PF100", Severity.HIGH,
                                 f"a {size // 2**20} MiB Python file is beyond the analysis limit; code hidden in a "
                                 "huge module was not checked", RULES["PF100"].name)])
        self.report.skipped.append(SkippedFile(relpath, "Python file over the size limit"))

    def _content(self, path: Path | None, relpath: str, data: bytes, size: int) -> None:
        """One file's bytes, dispatched by name: Python, requirements, pyproject, .pth, scripts, other text."""
        name = relpath.rsplit("/", 1)[-1].rsplit("!", 1)[-1].lower()
        text = data.decode("utf-8", "replace")
        self.report.add(textfiles.check_text(relpath, text))
        if name.endswith(textfiles.SCRIPT_SUFFIXES) and path is not None:
            self.user_scripts |= reach.script_names(text)
        if name.endswith(".pth"):
            self.report.add(textfiles.check_pth(relpath, data))
        elif name.endswith((".py", ".pyw")):
            if path is None:   # inside a wheel or zip: a module on its own, imported once installed
                self.report.add(_python_findings(text, relpath, depth=0))
            else:
                self.python_sources.append((relpath, text))
                self.python_files.append((path, relpath))
        elif name.startswith("requirements") and name.endswith((".txt", ".in")):
            self.report.add(requirements.check_requirements_text(text, relpath, self.vulns))
        elif name == "pyproject.toml":
            self.report.add(requirements.check_pyproject(text, relpath, self.vulns))

    def _python_pack(self) -> None:
        """The pack's Python files together: parse each, decide what runs at import (`reach`), then run the rules.
        Past the analysis budget the remaining files are analysed on their own (as if imported)."""
        modules: dict[str, pyfacts.ModuleFacts] = {}
        alone: list[pyfacts.ModuleFacts] = []
        budget = _PACK_ANALYSIS_BYTES
        for relpath, text in self.python_sources:
            parsed = _parse(text, relpath)
            if isinstance(parsed, list):
                self.report.add(parsed)
                continue
            budget -= len(text)
            if budget >= 0:
                modules[relpath] = parsed
            else:
                alone.append(reach.single(parsed))
        self.python_sources = []
        if self.root.is_dir() and not self.root.is_symlink():
            reach.resolve(modules, package=(self.root / "__init__.py").is_file(), root_name=self.root.name,
                          user_scripts=self.user_scripts)
        else:
            for facts in modules.values():
                reach.single(facts)
        for facts in [*modules.values(), *alone]:
            self.report.add(_reach_adjusted(facts, _rules(facts, 0)))

    def _pickle(self, relpath: str, data: bytes, path: Path) -> None:
        if data:
            self.report.add(pickles.check_pickle_bytes(relpath, data))
            return
        try:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if info.filename.endswith(".pkl") and info.file_size <= pickles.MAX_PICKLE_BYTES:
                        self.report.add(pickles.check_pickle_bytes(f"{relpath}!{info.filename}",
                                                                   archive.read(info)))
        except (zipfile.BadZipFile, OSError):
            self.report.skipped.append(SkippedFile(relpath, "damaged archive"))

    def _archive(self, path: Path, relpath: str) -> None:
        """Wheels and zips: listed and read in memory, never extracted. Python members get our rules (not
        bandit, which wants files), .pth members the .pth rule."""
        try:
            with zipfile.ZipFile(path) as archive:
                self._count(relpath, path.stat().st_size)
                for info in archive.infolist():
                    if info.is_dir() or info.file_size > self.options.max_text_bytes:
                        if not info.is_dir():
                            self.report.skipped.append(SkippedFile(f"{relpath}!{info.filename}", "member too large"))
                        continue
                    member = f"{relpath}!{info.filename}"
                    lowered = info.filename.lower()
                    if not lowered.endswith((".py", ".pth", ".txt", ".sh", ".bat", ".ps1", ".toml", ".pkl")) \
                            and not textfiles.is_native(lowered, b""):
                        continue
                    if self.total + info.file_size > self.options.max_total_bytes:
                        self.report.skipped.append(SkippedFile(member, "scan budget used up"))
                        return
                    data = archive.read(info)
                    self._count(member, info.file_size)
                    if textfiles.is_native(lowered, data[:8]):
                        self.report.add([textfiles.check_native(member)])
                    elif lowered.endswith(".pkl"):
                        self.report.add(pickles.check_pickle_bytes(member, data))
                    else:
                        self._content(None, member, data, info.file_size)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
            self.report.skipped.append(SkippedFile(relpath, f"damaged archive: {exc}"))


def _python_findings(source: str, relpath: str, depth: int, line_offset: int = 0) -> list[Finding]:
    """Our rules on one module analysed on its own (a source string, an archive member, a decoded payload)."""
    parsed = _parse(source, relpath, line_offset)
    if isinstance(parsed, list):
        return parsed
    return _rules(reach.single(parsed), depth, line_offset)


def _parse(source: str, relpath: str, line_offset: int = 0) -> pyfacts.ModuleFacts | list[Finding]:
    """The module's facts, or the coverage finding that says why it could not be analysed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=relpath)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        line = getattr(exc, "lineno", 0) or 0
        return [Finding(relpath, line_offset or line, "PF100", Severity.LOW,
                        f"not valid Python 3 ({type(exc).__name__}); its code was not analysed",
                        RULES["PF100"].name)]
    try:
        return pyfacts.analyse(tree, source, relpath)
    except RecursionError:
        return [Finding(relpath, line_offset, "PF100", Severity.MEDIUM, "nesting too deep to analyse",
                        RULES["PF100"].name)]


def _rules(facts: pyfacts.ModuleFacts, depth: int, line_offset: int = 0) -> list[Finding]:
    relpath = facts.relpath

    def payload(code: str, line: int) -> list[Finding]:
        return _python_findings(code, relpath, depth + 1, line_offset or line)

    ctx = PyContext(facts, payload, depth)
    found: list[Finding] = []
    for rule in PY_RULES:
        found.extend(rule(ctx))
    if line_offset:
        found = [Finding(f.path, line_offset, f.rule_id, f.severity,
                         f.message if f.message.startswith("in decoded payload") else
                         "in decoded payload: " + f.message, f.rule_name, f.tool, "") for f in found]
    return found


def _reach_adjusted(facts: pyfacts.ModuleFacts, found: list[Finding]) -> list[Finding]:
    """A standalone script or test that nothing in the pack runs is scanned one level lower: it runs only when a
    person runs it. (A module nothing imports but that is not recognisably a script keeps its severities: an
    import the analysis could not see must not hide a payload.)"""
    if facts.reach != reach.SCRIPT:
        return found
    lowered = []
    for f in found:
        severity = Severity(max(Severity.LOW, f.severity - 1))
        lowered.append(Finding(f.path, f.line, f.rule_id, severity,
                               f"{f.message} (in a standalone script the pack never imports or runs)",
                               f.rule_name, f.tool, f.snippet))
    return lowered
