"""Environments whose `prod` is a real ComfyUI 0.3.75 install (issue 14, item 3 on top of item 1).

A partyflow home (dev) is promoted into a ComfyUI (prod) with `partyflow env promote`: packs land in its
custom_nodes/ with ComfyUI-Manager's conventions and their dependencies in ComfyUI's venv; the health check starts
that ComfyUI headless in the sandbox (once per promotion), so a pack that imports on its own but fails in ComfyUI's
real start (it needs a GPU; the check runs `--cpu`) rolls the install back exactly. `env diff` reports the drift in
both directions, leaving out the file ComfyUI itself ships in custom_nodes/. A signed snapshot must be signed by a
key that the ComfyUI install's own keyring (user/__partyflow/keys) trusts. A smoke workflow (API format) runs in the
ComfyUI the health check started; its failure rolls back too. Tests build on each other, in file order; ComfyUI
starts three times (once per promotion that applies).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.manager.helpers import audit_entries, git
from tests.manager_catalog.helpers import make_wheel
from tests.manager_comfyui.conftest import ComfyInstall
from tests.manager_comfyui.test_comfyui_install import run_cli, run_json

from partyflow.config import Home
from partyflow.manager.comfyui_target import open_target
from partyflow.manager.keys import Keyring
from partyflow.manager.packs import PackManager
from partyflow.manager.promotion import snapshot_of
from partyflow.manager.provenance import tree_hash
from partyflow.manager.signing import sign_snapshot
from partyflow.manager.target_home import TargetHome

GOOD = '''import folder_paths  # ComfyUI's own module


class PfEnvGood:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "partyflow-test"

    def run(self):
        return ("%s",)


NODE_CLASS_MAPPINGS = {"PfEnvGood": PfEnvGood}
'''

DEPPACK = '''import pfenvdep


class PfEnvDep:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": pfenvdep.VERSION})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "partyflow-test"

    def run(self, text):
        if text == "boom":
            raise RuntimeError("smoke says no")
        return {"ui": {"text": [text]}, "result": (text,)}


NODE_CLASS_MAPPINGS = {"PfEnvDep": PfEnvDep}
'''

# Imports on its own (ComfyUI's arguments are not parsed then), fails in ComfyUI's real start with --cpu.
GPU_ONLY = '''from comfy.cli_args import args

if args.cpu:
    raise RuntimeError("gpupack needs a GPU, and this ComfyUI runs with --cpu")

NODE_CLASS_MAPPINGS = {}
'''

OLD = 'NODE_CLASS_MAPPINGS = {}\n'


def _comfy_state(comfy: ComfyInstall) -> dict[str, Any]:
    """What an exact rollback restores: every entry of custom_nodes (and .disabled) by tree hash, and the records."""
    nodes = comfy.root / "custom_nodes"
    entries = {str(p.relative_to(nodes)): tree_hash(p) for p in [*nodes.iterdir(), *nodes.glob(".disabled/*")]
               if p.name not in (".disabled", "__pycache__")}
    records = json.loads((comfy.root / "user" / "__partyflow" / "manager" / "packs.json").read_text())["packs"]
    return {"entries": entries, "records": records}


@pytest.fixture(scope="module")
def world(comfy: ComfyInstall, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """ctl: the home whose config.toml names dev (a home) and prod (the ComfyUI). dev: goodpack from git (managed)
    and deppack put there by hand (it needs pfenvdep). prod: oldpack, installed there by partyflow."""
    base = tmp_path_factory.mktemp("envs")
    wheels = base / "wheels"
    make_wheel(wheels, "pfenvdep", "1.0")
    ctl, dev = base / "ctl", base / "dev"
    ctl.mkdir()
    (ctl / "config.toml").write_text(
        f'[manager]\nno_index = true\nfind_links = ["{wheels}"]\n\n'
        f'[environments.dev]\nhome = "{dev}"\n\n'
        f'[environments.prod]\ncomfyui = "{comfy.root}"\nsecurity_level = "normal"\n')
    bare, work = base / "remotes" / "goodpack.git", base / "work" / "goodpack"
    bare.mkdir(parents=True)
    work.mkdir(parents=True)
    git("init", "-q", "--bare", cwd=bare)
    git("init", "-q", cwd=work)
    (work / "__init__.py").write_text(GOOD % "one")
    git("add", ".", cwd=work)
    git("commit", "-qm", "goodpack 1", cwd=work)
    git("remote", "add", "origin", str(bare), cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    PackManager(Home(dev), verify_timeout=60).install(str(bare), name="goodpack")
    deppack = dev / "custom_nodes" / "deppack"
    deppack.mkdir(parents=True)
    (deppack / "__init__.py").write_text(DEPPACK)
    (deppack / "requirements.txt").write_text("pfenvdep==1.0\n")
    old = base / "src" / "oldpack"
    old.mkdir(parents=True)
    (old / "__init__.py").write_text(OLD)
    assert run_json(ctl, "--comfyui", str(comfy.root), "nodes", "install", str(old))["changed"]
    return {"ctl": ctl, "dev": dev, "work": work, "bare": bare, "base": base}


def test_list_and_diff_see_the_comfyui_environment(comfy: ComfyInstall, world: dict[str, Any]) -> None:
    ctl = world["ctl"]
    listed = {e["name"]: e for e in run_json(ctl, "env", "list")}
    assert listed["prod"]["kind"] == "comfyui" and listed["prod"]["path"] == str(comfy.root)
    drift = run_json(ctl, "env", "diff", "dev", "prod", code=1)
    assert drift["only_in_a"] == ["deppack", "goodpack"] and drift["only_in_b"] == ["oldpack"]
    assert drift["changed"] == []  # ComfyUI's own websocket_image_save.py is not drift
    back = run_json(ctl, "env", "diff", "prod", "dev", code=1)
    assert back["only_in_a"] == ["oldpack"]
    reverse = run_json(ctl, "env", "promote", "env:prod", "--to", "dev", "--dry-run")  # ComfyUI as the source
    assert [(c["action"], c["name"]) for c in reverse["changes"]] == [
        ("uninstall", "deppack"), ("uninstall", "goodpack"), ("install", "oldpack")]
    python = run_json(ctl, "env", "diff", "dev", "prod", "--python", code=1)["python"]  # ComfyUI's interpreter
    assert "torch" in python["only_in_b"] or "torch" in python["changed"] or "torch" in python["only_in_a"]


def test_refusals_come_before_any_change(comfy: ComfyInstall, world: dict[str, Any]) -> None:
    ctl, base = world["ctl"], world["base"]
    before = _comfy_state(comfy)
    ui_format = base / "ui-workflow.json"  # what ComfyUI's Save writes: nodes and links, not /prompt's format
    ui_format.write_text(json.dumps({"last_node_id": 1, "nodes": [{"id": 1, "type": "PfEnvDep"}], "links": []}))
    refused = run_json(ctl, "env", "promote", "env:dev", "--to", "prod", "--smoke-workflow", str(ui_format),
                       "--yes", code=2)
    assert "API format" in refused["error"] and "Export (API)" in refused["hint"]

    # a snapshot signed by a key only the controlling home trusts: prod trusts its own keyring, not ctl's
    signer = Keyring(ctl).generate("release")
    document = snapshot_of(PackManager(Home(world["dev"]))).to_dict()  # hand-placed deppack: its folder as source
    signed = base / "release.json"
    signed.write_text(json.dumps(sign_snapshot(document,
                                               Keyring(ctl).signer("release"))))
    refused = run_json(ctl, "env", "promote", str(signed), "--to", "prod", "--dry-run", code=2)
    assert "user/__partyflow/keys" in refused["error"]
    assert f"--comfyui {comfy.root} keys trust" in refused["hint"]
    assert _comfy_state(comfy) == before

    trusted = run_json(ctl, "--comfyui", str(comfy.root), "keys", "trust", signer.export_line(), "--name", "release")
    assert trusted["key_id"] == signer.key_id
    assert (comfy.root / "user" / "__partyflow" / "keys" / "keyring.json").is_file()
    planned = run_json(ctl, "env", "promote", str(signed), "--to", "prod", "--dry-run")
    assert planned["signature"]["state"] == "signed" and planned["signature"]["key_id"] == signer.key_id
    assert [(c["action"], c["name"]) for c in planned["changes"]] == [
        ("uninstall", "oldpack"), ("install", "deppack"), ("install", "goodpack")]
    assert _comfy_state(comfy) == before

    # trusted_keys narrows the install's keyring: a key it trusts but the environment does not name is refused
    config = (ctl / "config.toml").read_text()
    (ctl / "config.toml").write_text(config.replace('security_level = "normal"\n',
                                                    'security_level = "normal"\ntrusted_keys = ["0123456789abcdef"]\n'))
    try:
        refused = run_json(ctl, "env", "promote", str(signed), "--to", "prod", "--dry-run", code=2)
        assert "trusted_keys" in refused["error"] and signer.key_id in refused["hint"]
    finally:
        (ctl / "config.toml").write_text(config)


def test_promote_home_into_comfyui(comfy: ComfyInstall, world: dict[str, Any]) -> None:
    ctl = world["ctl"]
    smoke = world["base"] / "smoke-api.json"  # run by that same ComfyUI once it serves
    smoke.write_text(json.dumps({"1": {"class_type": "PfEnvDep", "inputs": {"text": "hello"}}}))
    result = run_json(ctl, "env", "promote", "env:dev", "--to", "prod", "--smoke-workflow", str(smoke), "--yes")
    assert result["status"] == "promoted", result["reason"]
    assert result["health"]["checker"] == "comfyui"  # ComfyUI itself started, with its own Python
    assert result["health"]["smoke"]["ok"] and result["health"]["smoke"]["status"] == "success"
    imports = {h["name"]: h for h in result["health"]["imports"]}
    assert imports["deppack"]["ok"] and imports["goodpack"]["ok"]
    assert "websocket_image_save" in imports  # ComfyUI loaded its own file too, and kept it
    nodes = comfy.root / "custom_nodes"
    assert (nodes / "goodpack" / "__init__.py").read_text() == GOOD % "one"
    assert (nodes / "deppack" / "requirements.txt").is_file() and not (nodes / "oldpack").exists()
    assert (nodes / "websocket_image_save.py").is_file()
    assert (comfy.site / "pfenvdep" / "__init__.py").is_file()        # ComfyUI's venv...
    assert importlib.util.find_spec("pfenvdep") is None               # ...not partyflow's
    listed = {p["name"]: p for p in run_json(ctl, "--comfyui", str(comfy.root), "nodes", "list")}
    assert listed["goodpack"]["comfyui_manager"]["kind"] == "nightly" and listed["goodpack"]["managed"]
    before = Path(result["before_snapshot"])  # ComfyUI-Manager's folder and format, ours inside
    assert before.parent == comfy.root / "user" / "default" / "ComfyUI-Manager" / "snapshots"
    document = json.loads(before.read_text())
    assert {"git_custom_nodes", "file_custom_nodes", "pips"} <= set(document) and "partyflow" in document
    assert run_json(ctl, "env", "diff", "dev", "prod")["different"] is False
    assert not list((comfy.root / "user" / "__partyflow" / "manager" / "promotions").glob("*/state.json"))
    target = TargetHome.of(open_target(comfy.root))  # the audit log is the install's own
    actions = [(e.action, e.result) for e in audit_entries(target)]
    for step in ("promote.verify", "promote.plan", "promote.apply", "promote.health"):
        assert (step, "ok") in actions
    assert actions[-1] == ("promote", "ok")


def test_a_failing_smoke_workflow_in_comfyui_fails_the_promotion(comfy: ComfyInstall,
                                                                  world: dict[str, Any]) -> None:
    ctl = world["ctl"]
    before = _comfy_state(comfy)
    smoke = world["base"] / "smoke-boom.json"
    smoke.write_text(json.dumps({"7": {"class_type": "PfEnvDep", "inputs": {"text": "boom"}}}))
    done = run_cli(ctl, "env", "promote", "env:dev", "--to", "prod", "--smoke-workflow", str(smoke), "--yes",
                   "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "rolled back" and result["changes"] == [] and result["rollback"]["exact"]
    assert all(h["ok"] for h in result["health"]["imports"])
    assert result["health"]["smoke"]["status"] == "error"
    assert "node 7 (PfEnvDep): smoke says no" in result["reason"]
    assert _comfy_state(comfy) == before


def test_a_failing_health_check_rolls_the_comfyui_install_back_exactly(comfy: ComfyInstall,
                                                                       world: dict[str, Any]) -> None:
    ctl, dev, work = world["ctl"], world["dev"], world["work"]
    (work / "__init__.py").write_text(GOOD % "two")  # goodpack 2 in dev
    git("commit", "-qam", "goodpack 2", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    dev_manager = PackManager(Home(dev), verify_timeout=60)
    dev_manager.update("goodpack")
    dev_manager.disable("deppack")
    gpu = dev / "custom_nodes" / "gpupack"
    gpu.mkdir()
    (gpu / "__init__.py").write_text(GPU_ONLY)
    before = _comfy_state(comfy)
    pips = comfy.run("import pfenvdep; print(pfenvdep.VERSION)").stdout

    done = run_cli(ctl, "env", "promote", "env:dev", "--to", "prod", "--yes", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "rolled back" and result["rollback"]["exact"], result
    assert "gpupack" in result["reason"] and "needs a GPU" in result["reason"]
    assert {"install gpupack", "disable deppack"} <= {a.split(" from ")[0] for a in result["applied"]}
    failed = {h["name"]: h for h in result["health"]["imports"] if not h["ok"]}
    assert set(failed) == {"gpupack"}
    assert _comfy_state(comfy) == before  # every entry and record exactly as it was
    assert (comfy.root / "custom_nodes" / "goodpack" / "__init__.py").read_text() == GOOD % "one"
    assert comfy.run("import pfenvdep; print(pfenvdep.VERSION)").stdout == pips
    drift = run_json(ctl, "env", "diff", "dev", "prod", code=1)
    assert drift["only_in_a"] == ["gpupack"]
    assert {c["name"] for c in drift["changed"]} == {"deppack", "goodpack"}
    shutil.rmtree(gpu)


def test_a_comfyui_environment_takes_nothing_from_the_shell(comfy: ComfyInstall, world: dict[str, Any],
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its interpreter is the table's `python` or the install's venv, its level the table's or its config's; the
    $PARTYFLOW_COMFYUI_PYTHON and $PARTYFLOW_SECURITY_LEVEL of whoever runs the promotion do not apply."""
    from partyflow.manager.environments import EnvError, environment, open_environment

    ctl = Home(world["ctl"])
    monkeypatch.setenv("PARTYFLOW_COMFYUI_PYTHON", str(tmp_path / "no-such-python"))
    monkeypatch.setenv("PARTYFLOW_SECURITY_LEVEL", "weak")
    manager = open_environment(environment(ctl, "prod"))
    assert manager.home.python == str(comfy.python) and manager.policy().level.value == "normal"
    config = ctl.config_file.read_text()
    try:
        ctl.config_file.write_text(config.replace('security_level = "normal"\n', "").replace(
            "[manager]\n", '[manager]\nsecurity_level = "strong"\n'))
        assert open_environment(environment(ctl, "prod")).policy().level.value == "strong"  # its settings
        plain = tmp_path / "not-comfy"
        plain.mkdir()
        ctl.config_file.write_text(config.replace(f'comfyui = "{comfy.root}"', f'comfyui = "{plain}"'))
        with pytest.raises(EnvError) as refused:
            open_environment(environment(ctl, "prod"))
        assert refused.value.user_error and "environment 'prod'" in refused.value.message
        assert "not a ComfyUI install" in refused.value.message and list(plain.iterdir()) == []
    finally:
        ctl.config_file.write_text(config)
