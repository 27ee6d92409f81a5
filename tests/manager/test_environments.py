"""Environments (issue 14 item 3): `partyflow env list|diff|promote` across real homes, with real packs from
folders, archives and git repositories, real imports in the sandbox, a real smoke workflow run in a subprocess,
and real rollbacks compared by tree hash and enabled state."""

from __future__ import annotations

import json
import signal
import tarfile
from pathlib import Path

import pytest
from tests.manager.helpers import audit_entries, cli, git, write_pack

from partyflow.config import Home
from partyflow.manager.keys import Keyring
from partyflow.manager.packs import PackManager
from partyflow.manager.promotion import promote, snapshot_of
from partyflow.manager.provenance import tree_hash
from partyflow.manager.signing import sign_snapshot
from partyflow.manager.staging import PAUSE_MARKER
from partyflow.nodes.isolation.environment import python_of, venv_dir

SMOKE_NODES = '''

class SmokeOk:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "test"

    def run(self):
        return {"ui": {"text": ["fine"]}}


class SmokeBoom(SmokeOk):
    def run(self):
        raise RuntimeError("smoke says no")


NODE_CLASS_MAPPINGS.update({"SmokeOk": SmokeOk, "SmokeBoom": SmokeBoom})
'''


def _state(home: Home) -> dict[str, tuple[bool, str]]:
    """What a rollback must restore exactly: every pack's enabled state and tree hash."""
    return {p.name: (p.enabled, tree_hash(p.path)) for p in PackManager(home).installed()}


def _records(home: Home) -> dict:
    path = home.root / "manager" / "packs.json"
    return json.loads(path.read_text())["packs"] if path.exists() else {}


@pytest.fixture
def world(tmp_path: Path) -> dict:
    """A controlling home with dev and prod environments. dev: alpha v2 (folder, with smoke nodes), beta (archive,
    disabled), gamma (git, pinned tag). prod: alpha v1, gamma (same), legacy (prod only)."""
    src = tmp_path / "src"
    alpha1 = write_pack(src / "v1" / "alpha", "1", cls="AlphaNode")
    alpha2 = write_pack(src / "v2" / "alpha", "2", cls="AlphaNode")
    with (alpha2 / "__init__.py").open("a") as handle:
        handle.write(SMOKE_NODES)
    beta = write_pack(src / "beta", "1", cls="BetaNode")
    archive = src / "beta-1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(beta, arcname="beta")
    repo = write_pack(src / "gamma", "1", cls="GammaNode")
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-qm", "v1", cwd=repo)
    git("tag", "v1", cwd=repo)
    legacy = write_pack(src / "legacy", "1", cls="LegacyNode")

    dev, prod, ctl = Home(tmp_path / "dev"), Home(tmp_path / "prod"), Home(tmp_path / "ctl")
    ctl.root.mkdir()
    ctl.config_file.write_text(f'[environments.dev]\nhome = "{dev.root}"\n\n'
                               f'[environments.prod]\nhome = "{prod.root}"\nsecurity_level = "normal"\n')
    pm_dev = PackManager(dev, verify_timeout=30)
    pm_dev.install(str(alpha2))
    pm_dev.install(str(archive), name="beta")
    pm_dev.disable("beta")
    pm_dev.install(f"{repo}@v1", name="gamma")
    pm_prod = PackManager(prod, verify_timeout=30)
    pm_prod.install(str(alpha1))
    pm_prod.install(f"{repo}@v1", name="gamma")
    pm_prod.install(str(legacy))
    return {"dev": dev, "prod": prod, "ctl": ctl, "src": src, "tmp": tmp_path}


def _workflow(path: Path, class_type: str) -> Path:
    path.write_text(json.dumps({"1": {"class_type": class_type, "inputs": {}}}))
    return path


def test_diff_dry_run_and_promote_dev_to_prod(world: dict) -> None:
    dev, prod, ctl = world["dev"], world["prod"], world["ctl"]

    listed = json.loads(cli("env", "list", "--json", home=ctl).stdout)
    assert [(e["name"], e["kind"], e["security_level"]) for e in listed] == [("dev", "home", None),
                                                                             ("prod", "home", "normal")]

    drift = cli("env", "diff", "dev", "prod", "--json", home=ctl)
    assert drift.returncode == 1, drift.stderr  # they differ
    report = json.loads(drift.stdout)
    assert report["only_in_a"] == ["beta"] and report["only_in_b"] == ["legacy"]
    changed = {c["name"]: c["fields"] for c in report["changed"]}
    assert set(changed) == {"alpha"} and "content_hash" in changed["alpha"]  # gamma is the same commit
    human = cli("env", "diff", "dev", "prod", home=ctl)
    assert human.returncode == 1 and "beta: only in dev" in human.stdout and "legacy: only in prod" in human.stdout

    before = _state(prod)
    planned = cli("env", "promote", "env:dev", "--to", "prod", "--dry-run", "--json", home=ctl)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["status"] == "planned"
    assert [(c["action"], c["name"]) for c in plan["changes"]] == [
        ("uninstall", "legacy"), ("replace", "alpha"), ("install", "beta"), ("disable", "beta")]
    assert {c["pack"] for c in plan["checks"]} == {"alpha", "beta"}  # fetched and scanned before any change
    assert _state(prod) == before  # a dry run changes nothing

    done = cli("env", "promote", "env:dev", "--to", "prod", "--yes", "--json", home=ctl)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "promoted" and len(result["applied"]) == 4
    assert all(h["ok"] for h in result["health"]["imports"])
    assert _state(prod) == _state(dev)
    assert Path(result["before_snapshot"]).is_file()

    same = cli("env", "diff", "dev", "prod", home=ctl)
    assert same.returncode == 0 and "match" in same.stdout

    actions = [(e.action, e.result) for e in audit_entries(prod)]
    for step in ("promote.verify", "promote.plan", "promote.apply", "promote.health"):
        assert (step, "ok") in actions
    assert actions[-1] == ("promote", "ok")
    again = cli("env", "promote", "env:dev", "--to", "prod", "--yes", "--json", home=ctl)
    assert json.loads(again.stdout)["status"] == "unchanged"


def test_failing_smoke_workflow_rolls_back_exactly(world: dict) -> None:
    prod, ctl = world["prod"], world["ctl"]
    iso = write_pack(world["src"] / "iso", cls="IsoNode")  # an isolated pack, which dev lacks: uninstalled
    PackManager(prod).install(str(iso), isolate=True)
    venv = venv_dir(prod.root, "iso")
    venv_files = sorted(p.relative_to(venv).as_posix() for p in venv.rglob("*"))
    before, records = _state(prod), _records(prod)
    boom = _workflow(world["tmp"] / "boom.json", "SmokeBoom")

    done = cli("env", "promote", "env:dev", "--to", "prod", "--smoke-workflow", str(boom), "--yes", "--json",
               home=ctl)
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "rolled back" and len(result["applied"]) == 5
    assert "smoke says no" in result["reason"] and result["rollback"]["exact"]
    assert _state(prod) == before and _records(prod) == records
    assert (prod.root / "custom_nodes" / "legacy").is_dir()  # the uninstalled packs are back
    assert sorted(p.relative_to(venv).as_posix() for p in venv.rglob("*")) == venv_files  # with iso's venv
    assert python_of(venv).exists() and _records(prod)["iso"]["isolated"]
    actions = [(e.action, e.result) for e in audit_entries(prod)]
    assert ("promote.health", "failed") in actions and ("promote.rollback", "ok") in actions
    assert actions[-1] == ("promote", "failed")

    ok = _workflow(world["tmp"] / "ok.json", "SmokeOk")
    report = promote(ctl, "env:dev", "prod", smoke_workflow=ok)
    assert report.status == "promoted" and report.health["smoke"]["ok"]


def test_pack_failing_at_import_rolls_back(world: dict) -> None:
    dev, prod, ctl = world["dev"], world["prod"], world["ctl"]
    broken = dev.custom_nodes / "zz_broken"  # put there by hand: promoted from its folder
    write_pack(broken, cls="Broken")
    with (broken / "__init__.py").open("a") as handle:
        handle.write("\nraise ImportError('zz_broken cannot start')\n")
    before, records = _state(prod), _records(prod)

    report = promote(ctl, "env:dev", "prod")
    assert report.status == "rolled back", report.to_dict()
    assert "zz_broken" in (report.reason or "") and report.rollback and report.rollback["exact"]
    assert report.applied and report.applied[-1] == "disable beta"  # the changes before it had been applied
    assert _state(prod) == before and _records(prod) == records
    assert not list((prod.root / "manager" / "promotions").glob("*/state.json"))


def test_refusals_change_nothing(world: dict) -> None:
    dev, prod, ctl = world["dev"], world["prod"], world["ctl"]
    before = _state(prod)

    unknown = cli("env", "promote", "env:dev", "--to", "staging", "--yes", home=ctl)
    assert unknown.returncode == 2 and "no environment named 'staging'" in unknown.stderr
    assert "dev, prod" in unknown.stderr
    assert cli("env", "diff", "dev", "nowhere", home=ctl).returncode == 2

    corrupt = world["tmp"] / "corrupt.json"
    corrupt.write_text('{"format": "partyflow-snapshot/1", "packs": [')
    done = cli("env", "promote", str(corrupt), "--to", "prod", "--yes", "--json", home=ctl)
    assert done.returncode == 2 and "corrupt snapshot" in json.loads(done.stdout)["error"]
    missing = cli("env", "promote", str(world["tmp"] / "nope.json"), "--to", "prod", "--yes", home=ctl)
    assert missing.returncode == 2 and "no snapshot file" in missing.stderr

    # a snapshot signed by a key prod does not trust
    outsider = Keyring(world["tmp"] / "outsider")
    outsider.generate("outsider")
    document = snapshot_of(PackManager(dev)).to_dict()
    signed = world["tmp"] / "signed.json"
    signed.write_text(json.dumps(sign_snapshot(document, outsider.signer("outsider"))))
    refused = cli("env", "promote", str(signed), "--to", "prod", "--yes", "--json", home=ctl)
    assert refused.returncode == 2
    assert "unknown key" in json.loads(refused.stdout)["error"]

    # tampered after signing: refused even by a key prod trusts
    Keyring(prod).trust(outsider.export("outsider"))
    tampered = json.loads(signed.read_text())
    tampered["packs"] = [p for p in tampered["packs"] if p["name"] != "beta"]
    signed.write_text(json.dumps(tampered))
    bad = cli("env", "promote", str(signed), "--to", "prod", "--yes", "--json", home=ctl)
    assert bad.returncode == 2 and "bad signature" in json.loads(bad.stdout)["error"]

    assert _state(prod) == before
    assert not list(prod.snapshots.glob("pre-promote-*")) if prod.snapshots.exists() else True
    assert ("promote", "refused") in [(e.action, e.result) for e in audit_entries(prod)]


def test_strong_prod_takes_only_a_snapshot_signed_by_its_release_key(world: dict) -> None:
    dev, prod, ctl = world["dev"], world["prod"], world["ctl"]
    release = Keyring(dev)
    key = release.generate("release")
    Keyring(prod).trust(release.export("release"))
    # prod at "strong": signed snapshots only (the default there), from the release key only; the packs carry no
    # signatures of their own, so the snapshot's signature over their content hashes is what lets them in
    # (prod's own config.toml says strong; the environment table sets no level of its own)
    config = ctl.config_file.read_text().replace('security_level = "normal"\n', '')
    ctl.config_file.write_text(config + f'trusted_keys = ["{key.key_id}"]\n')
    prod.config_file.write_text('security_level = "strong"\n')
    # the shell's level is the operator's, not prod's: it cannot loosen prod
    unsigned = cli("env", "promote", "env:dev", "--to", "prod", "--yes", home=ctl,
                   env={"PARTYFLOW_SECURITY_LEVEL": "weak"})
    assert unsigned.returncode == 2 and "accepts only signed snapshots" in unsigned.stderr

    path = world["tmp"] / "release.json"
    path.write_text(json.dumps(snapshot_of(PackManager(dev)).to_dict()))
    signed = cli("keys", "sign", str(path), "--key", "release", "--json", home=dev)  # `keys sign` knows snapshots
    assert signed.returncode == 0, signed.stderr
    report = promote(ctl, str(path), "prod")
    assert report.status == "promoted" and report.signature and report.signature["key_id"] == key.key_id
    assert report.security_level == "strong"
    assert {c["pack"]: c["signature"]["state"] for c in report.checks} == {"alpha": "signed", "beta": "signed"}
    assert report.health["content"] == {"checked": 2, "wrong": []}
    assert _state(prod) == _state(dev)


def test_a_killed_promotion_is_rolled_back_by_the_next_one(world: dict, paused) -> None:  # noqa: ANN001
    prod, ctl = world["prod"], world["ctl"]
    before, records = _state(prod), _records(prod)
    code = ("from pathlib import Path\nfrom partyflow.config import Home\n"
            "from partyflow.manager.promotion import promote\n"
            f"promote(Home(Path({str(ctl.root)!r})), 'env:dev', 'prod')\n")
    process = paused(code, "recorded")  # SIGKILL right after the first change (uninstall legacy) was recorded
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith(PAUSE_MARKER):
            break
    else:
        raise AssertionError("the promotion ended without reaching the step: " + "".join(seen[-20:]))
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert "legacy" not in _state(prod)

    report = promote(ctl, "env:dev", "prod", dry_run=True)
    assert len(report.recovered) == 1 and report.recovered[0].startswith("rolled back interrupted promotion")
    assert _state(prod) == before and _records(prod) == records
    assert ("promote.rollback", "recovered") in [(e.action, e.result) for e in audit_entries(prod)]


def test_diff_reports_requirements_enabled_state_and_bad_config(tmp_path: Path) -> None:
    """Packs put in place by hand (no installs): drift in declared requirements and enabled state."""
    one, two, ctl = Home(tmp_path / "one"), Home(tmp_path / "two"), Home(tmp_path / "ctl")
    write_pack(one.custom_nodes / "same", files={"requirements.txt": "packaging>=20\n"})
    write_pack(two.custom_nodes / "same", files={"requirements.txt": "packaging>=20\n# a comment\n"})
    write_pack(one.custom_nodes / "req", files={"requirements.txt": "packaging>=20\n"})
    write_pack(two.custom_nodes / "req", files={"requirements.txt": "packaging>=21\n"})
    write_pack(one.custom_nodes / "switch")
    write_pack(two.disabled_nodes / "switch")
    ctl.root.mkdir()
    ctl.config_file.write_text('[environments.one]\nhome = "../one"\n[environments.two]\nhome = "../two"\n')

    done = cli("env", "diff", "one", "two", "--python", "--json", home=ctl)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    changed = {c["name"]: c["fields"] for c in report["changed"]}
    assert changed["req"]["requirements"] == {"a": ["packaging>=20"], "b": ["packaging>=21"]}
    assert changed["switch"] == {"enabled": {"a": True, "b": False}}
    assert set(changed["same"]) == {"content_hash"}  # a comment changes the files, not the requirements
    assert report["python"] == {"only_in_a": {}, "only_in_b": {}, "changed": {}}  # one shared interpreter
    human = cli("env", "diff", "one", "two", home=ctl).stdout
    assert "requirements packaging>=20 -> packaging>=21" in human and "switch: state enabled -> disabled" in human

    ctl.config_file.write_text('[environments.one]\nhome = "../one"\ncomfyui = "../two"\n')
    bad = cli("env", "list", home=ctl)
    assert bad.returncode == 2 and "exactly one of home" in bad.stderr
    ctl.config_file.write_text('[environments.one]\nhome = "../one"\nsecurity_level = "lax"\n')
    assert "security_level must be one of" in cli("env", "list", home=ctl).stderr
    ctl.config_file.write_text('[environments.one]\ncomfyui = "../two"\n')
    comfy = cli("env", "diff", "one", "one", home=ctl)  # no ComfyUI target support in this build: clear refusal
    assert comfy.returncode == 2 and ("ComfyUI" in comfy.stderr or "comfyui" in comfy.stderr), comfy.stderr
