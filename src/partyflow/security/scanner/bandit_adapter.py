"""bandit as a library: its checks for vulnerable-but-honest code (shell=True, weak hashes, yaml.load...) next to
our own rules for malicious code.

bandit judges how dangerous a line would be if an attacker controlled its input; our rules judge whether the pack
itself is the attacker. So bandit's HIGH becomes our medium and everything else low: bandit alone never blocks an
install (a scanner that cries wolf gets switched off), while its findings stay visible in reports. `# nosec`
comments are ignored: an attacker writes them too. When bandit is not installed the scan says so and goes on.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from partyflow.security.scanner.model import Finding, Severity

__all__ = ["bandit_version", "run_bandit"]

_SKIP = frozenset({"B101"})  # assert: about optimised builds, not about packs
_MAP = {"HIGH": Severity.MEDIUM, "MEDIUM": Severity.LOW, "LOW": Severity.LOW}


def bandit_version() -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("bandit")
    except PackageNotFoundError:
        return None


def run_bandit(files: list[tuple[Path, str]]) -> list[Finding] | None:
    """Findings for `files` ((path on disk, path to report) pairs); None when bandit is unavailable."""
    if not files:
        return [] if bandit_version() else None
    by_path = {str(path): rel for path, rel in files}
    loggers = [logging.getLogger(name) for name in ("bandit", "stevedore")]
    previous = [logger.level for logger in loggers]
    for logger in loggers:  # bandit logs per file, stevedore about bandit's optional output formatters
        logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():  # bandit passes stevedore an argument it deprecated
            warnings.filterwarnings("ignore", message="The verify_requirements argument",
                                    category=DeprecationWarning)
            try:
                from bandit.core import config as b_config
                from bandit.core import manager as b_manager
            except ImportError:
                return None
            manager = b_manager.BanditManager(b_config.BanditConfig(), "file", quiet=True, ignore_nosec=True)
            manager.files_list = sorted(by_path)
            with contextlib.redirect_stderr(io.StringIO()):
                manager.run_tests()
            issues = manager.get_issue_list()
    finally:
        for logger, level in zip(loggers, previous, strict=True):
            logger.setLevel(level)
    found: list[Finding] = []
    for issue in issues:
        if issue.test_id in _SKIP:
            continue
        severity = _MAP.get(str(issue.severity).upper(), Severity.LOW)
        relpath = by_path.get(issue.fname, issue.fname)
        found.append(Finding(relpath, int(issue.lineno or 0), f"bandit.{issue.test_id}", severity,
                             f"{issue.text} (bandit {issue.test}, confidence {str(issue.confidence).lower()})",
                             rule_name=issue.test, tool="bandit"))
    return found
