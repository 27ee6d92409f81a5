"""Git sources through the `git` command line: clone at a tag, branch or commit, update by fetch and checkout.

The CLI is used rather than a library so that users' credential helpers, proxies and SSH setup apply unchanged.
Prompts are disabled (a manager operation must never hang waiting for a password) and every call has a timeout.
Branches are checked out as local tracking branches so ComfyUI-Manager's `git pull` still works on our installs;
tags and commits are checked out detached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from partyflow.manager.errors import ManagerError

__all__ = ["GitError", "GitRevision", "checkout", "clone", "fetch", "git_available", "head_commit"]

GIT_TIMEOUT = 600.0


class GitError(ManagerError):
    """A git command that failed; the message carries git's own last line."""


@dataclass(frozen=True)
class GitRevision:
    commit: str
    kind: str            # branch | tag | commit
    ref: str             # the branch or tag name, or the commit as given


def git_available() -> bool:
    return shutil.which("git") is not None


def _git(*args: str, cwd: Path | None = None, timeout: float = GIT_TIMEOUT) -> str:
    if not git_available():
        raise GitError("git is not installed", hint="install git, or install the pack from an archive")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "",
           "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")}
    command = ["git", "-c", "advice.detachedHead=false", *args]
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]} did not finish within {timeout:g} seconds") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise GitError(f"git {args[0]} failed: {last}")
    return done.stdout.strip()


def _resolve(repo: Path, version: str | None) -> GitRevision:
    """A branch (remote-tracking), a tag or a commit, in that order; None means the remote's default branch."""
    if version is None:
        try:
            branch = _git("symbolic-ref", "--short", "refs/remotes/origin/HEAD", cwd=repo).removeprefix("origin/")
        except GitError:
            return GitRevision(_git("rev-parse", "HEAD", cwd=repo), "commit", "HEAD")
        version = branch
    for kind, ref in (("branch", f"refs/remotes/origin/{version}"), ("tag", f"refs/tags/{version}"),
                      ("commit", version)):
        try:
            commit = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo)
        except GitError:
            continue
        return GitRevision(commit, kind, version)
    raise GitError(f"the repository has no branch, tag or commit {version!r}", user_error=True)


def checkout(repo: Path, version: str | None) -> GitRevision:
    """Check out `version` in the clone at `repo` (its working tree is overwritten)."""
    revision = _resolve(repo, version)
    if revision.kind == "branch":
        _git("checkout", "--quiet", "--force", "-B", revision.ref, "--track", f"origin/{revision.ref}", cwd=repo)
    else:
        _git("checkout", "--quiet", "--force", "--detach", revision.commit, cwd=repo)
    return revision


def clone(url: str, dest: Path, version: str | None) -> GitRevision:
    """Clone `url` into the missing folder `dest` and check out `version`."""
    _git("clone", "--quiet", "--no-checkout", "--", url, str(dest))
    return checkout(dest, version)


def fetch(repo: Path) -> None:
    """Fetch branches and tags (tags forced: a moved tag should be seen, not refused)."""
    _git("fetch", "--quiet", "--force", "--tags", "origin", cwd=repo)


def head_commit(repo: Path) -> str | None:
    try:
        return _git("rev-parse", "HEAD", cwd=repo)
    except GitError:
        return None
