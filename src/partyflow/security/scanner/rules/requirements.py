"""PF201-PF205: what a pack asks pip to install (requirements*.txt, pyproject dependencies, pip calls in code).

Checks, per requirement: a name one typo from a popular package, a release on the incident blocklist, a direct URL
(bypasses the index and its hashes; critical when it names a popular package, the trojaned-wheel technique), an
added or replaced package index, and known vulnerabilities of pinned versions from the offline OSV database.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator
from typing import Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from partyflow.security.scanner.catalog import RULES
from partyflow.security.scanner.depnames import BLOCKLIST, POPULAR, TROJAN_TARGETS, canonical, typosquat_of
from partyflow.security.scanner.model import Finding, Severity

__all__ = ["INDEX_OPTIONS", "VulnLookup", "check_lines", "check_pyproject", "check_requirements_text"]

KNOWN_INDEXES = ("download.pytorch.org", "pypi.org", "pypi.python.org", "pypi.nvidia.com", "files.pythonhosted.org")
INDEX_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--trusted-host")
_URL = re.compile(r"^(git\+|hg\+|svn\+|bzr\+)?(https?|ftp|file|ssh)://|^git@", re.IGNORECASE)


class VulnLookup(Protocol):
    def lookup(self, name: str, version: str) -> list[Finding]: ...


def _finding(relpath: str, line: int, rule_id: str, severity: Severity, message: str, snippet: str) -> Finding:
    return Finding(relpath, line, rule_id, severity, message, RULES[rule_id].name, snippet=snippet[:160])


def check_requirements_text(text: str, relpath: str, vulns: VulnLookup | None = None) -> Iterator[Finding]:
    lines: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = (pending + stripped).strip()
        pending = ""
        if whole:
            lines.append((start, whole))
    for number, line in lines:
        yield from check_line(line, relpath, number, vulns)


def check_pyproject(text: str, relpath: str, vulns: VulnLookup | None = None) -> Iterator[Finding]:
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return
    project = data.get("project", {})
    specs = list(project.get("dependencies", []) or [])
    for extra in (project.get("optional-dependencies", {}) or {}).values():
        specs.extend(extra or [])
    for spec in specs:
        if isinstance(spec, str):
            line = next((i for i, text_line in enumerate(text.splitlines(), 1) if spec in text_line), 0)
            yield from check_line(spec, relpath, line, vulns)


def check_lines(specs: Iterable[str], relpath: str, *, line: int, vulns: VulnLookup | None = None) -> list[Finding]:
    """Requirements given inline (a `pip install a b` in code), all reported at `line`."""
    return [f for spec in specs for f in check_line(spec, relpath, line, vulns)]


def check_line(line: str, relpath: str, number: int, vulns: VulnLookup | None) -> Iterator[Finding]:
    if line.startswith(("-r", "--requirement", "-c", "--constraint")):
        return
    option = next((o for o in INDEX_OPTIONS if line == o or line.startswith((o + " ", o + "="))), None)
    if option is not None:
        target = line[len(option):].strip(" =")
        if any(host in target for host in KNOWN_INDEXES):
            yield _finding(relpath, number, "PF204", Severity.LOW, f"{option} {target}: a well-known index", line)
        else:
            yield _finding(relpath, number, "PF204", Severity.HIGH, f"{option} {target or '?'}: packages may come "
                           "from an index nobody reviewed (dependency confusion)", line)
        return
    if line.startswith(("-e ", "--editable ")):
        line = line.split(None, 1)[1]
    if line.startswith("-"):
        return
    if _URL.match(line) or line.startswith(("./", "../", "/")) or line.endswith((".whl", ".tar.gz", ".zip")):
        yield from _direct(relpath, number, _name_from_url(line), line, line)
        return
    try:
        requirement = Requirement(line)
    except InvalidRequirement as exc:
        yield _finding(relpath, number, "PF203", Severity.LOW, f"requirement pip may read differently: {exc}", line)
        return
    name = canonical(requirement.name)
    if requirement.url:
        yield from _direct(relpath, number, name, requirement.url, line)
        return
    yield from _name_checks(relpath, number, name, requirement.specifier, line)
    pinned = _pinned(requirement.specifier)
    if pinned and vulns is not None:
        for finding in vulns.lookup(name, pinned):
            yield _finding(relpath, number, finding.rule_id, finding.severity, finding.message, line)


def _name_checks(relpath: str, number: int, name: str, specifier: SpecifierSet, line: str) -> Iterator[Finding]:
    squatted = typosquat_of(name)
    if squatted:
        yield _finding(relpath, number, "PF201", Severity.HIGH,
                       f"{name!r} is one typo away from the popular package {squatted!r} (typosquatting)", line)
    blocked = BLOCKLIST.get(name)
    if blocked is None:
        return
    pinned = _pinned(specifier)
    if pinned in blocked.versions:
        yield _finding(relpath, number, "PF202", Severity.CRITICAL, f"{name}=={pinned}: {blocked.incident}", line)
        return
    admits = [v for v in blocked.versions if specifier.contains(v, prereleases=True)]
    if admits and pinned is None:
        yield _finding(relpath, number, "PF202", Severity.MEDIUM, f"{name}{specifier or ''} allows "
                       f"{', '.join(admits)} ({blocked.incident}); pin a safe version", line)


def _direct(relpath: str, number: int, name: str | None, url: str, line: str) -> Iterator[Finding]:
    base = canonical(name) if name else None
    if base in TROJAN_TARGETS:
        yield _finding(relpath, number, "PF203", Severity.CRITICAL, f"{base} from a direct URL instead of PyPI: "
                       "the trojaned-wheel technique (ComfyUI_LLMVISION served fake openai/anthropic wheels)", line)
        return
    pinned = "#sha256=" in url or re.search(r"@[0-9a-f]{40}\b", url) is not None
    severity = Severity.MEDIUM if pinned else Severity.HIGH
    why = "pinned by hash, but outside the index's review" if pinned else \
        "bypasses the package index: the content can change at any time and nothing vouches for it"
    yield _finding(relpath, number, "PF203", severity, f"dependency {base or url[:60]} from a direct URL: {why}",
                   line)
    if base:
        yield from _name_checks(relpath, number, base, SpecifierSet(), line)


def _name_from_url(url: str) -> str | None:
    if "#egg=" in url:
        return url.split("#egg=", 1)[1].split("&", 1)[0]
    tail = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    if tail.endswith(".whl"):
        return tail.split("-", 1)[0]
    for suffix in (".tar.gz", ".zip", ".git"):
        if tail.endswith(suffix):
            tail = tail[: -len(suffix)]
            return re.split(r"-\d", tail, maxsplit=1)[0] or None
    return None


def _pinned(specifier: SpecifierSet) -> str | None:
    specs = list(specifier)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        try:
            return str(Version(specs[0].version))
        except InvalidVersion:
            return specs[0].version
    return None


def popular(name: str) -> bool:
    return canonical(name) in POPULAR
