"""`bundle create --catalog`: a real git repo and an archive on a loopback server, wheels from a real PEP 503
index on 127.0.0.1 (one only for Windows), the bundle installed offline into a fresh home, a killed build resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from tests.offline.conftest import ROOT, cli, cli_json

from partyflow.config import Home
from partyflow.manager.bundle_build import CACHE_DIR, build_from_catalog
from partyflow.manager.bundles import BundleError
from partyflow.manager.dependencies import installed_packages
from partyflow.manager.packs import PackManager
from partyflow.manager.staging import PAUSE_ENV, PAUSE_MARKER

from .conftest import LINUX, Index, sha256_of


def write_catalog(path: Path, packs: list[dict[str, object]], **top: object) -> Path:
    """A YAML catalog (JSON is valid YAML; the .yaml suffix makes the YAML parser read it)."""
    path.write_text(json.dumps({"packs": packs, **top}, indent=2), encoding="utf-8")
    return path


def standard_packs(index: Index, gitpack: Path) -> list[dict[str, object]]:
    archive = index.root / "archives" / "zippack-1.0.tar.gz"
    return [
        {"name": "gitpack", "source": f"git+file://{gitpack}", "version": "v1.0", "security_level": "strong",
         "host_version": ">=0.1"},
        {"name": "zippack", "version": "1.0", "source": f"{index.url}/archives/zippack-1.0.tar.gz",
         "sha256": sha256_of(archive), "dependencies": ["pfb-extralib>=2"]},
    ]


def test_catalog_bundle_with_foreign_wheels_installs_offline(index: Index, gitpack: Path, maker: Home,
                                                             target: tuple[Home, str], tmp_path: Path) -> None:
    catalog = tmp_path / "studio.yaml"
    catalog.write_text(
        "name: studio\n"
        "packs:\n"
        f"  - name: gitpack\n    source: git+file://{gitpack}\n    version: v1.0\n    security_level: strong\n"
        f"    host_version: '>=0.1'\n"
        f"  - name: zippack\n    version: '1.0'\n    source: {index.url}/archives/zippack-1.0.tar.gz\n"
        f"    sha256: {sha256_of(index.root / 'archives' / 'zippack-1.0.tar.gz')}\n"
        "    dependencies: ['pfb-extralib>=2']\n", encoding="utf-8")
    out = tmp_path / "dist"
    made = cli_json("bundle", "create", "--catalog", str(catalog), "--platform", LINUX, "--platform", "win_amd64",
                    "--python-version", "3.11", "--index-url", index.simple, "--out", str(out), home=maker)
    bundle = Path(made["bundle"])
    assert bundle == out / f"studio-py3.11-{LINUX}+win_amd64.pfb" and made["signer"]["name"] == "release"
    with zipfile.ZipFile(bundle) as zf:
        wheels = sorted(n.split("/", 1)[1] for n in zf.namelist() if n.startswith("wheelhouse/"))
        manifest = json.loads(zf.read("manifest.json"))
    assert wheels == ["pfb_extralib-2.0-py3-none-any.whl", f"pfb_nativelib-1.0-py3-none-{LINUX}.whl",
                      "pfb_nativelib-1.0-py3-none-win_amd64.whl", "pfb_purelib-1.0-py3-none-any.whl"]
    packs = {p["name"]: p for p in manifest["packs"]}
    assert packs["gitpack"]["security_level"] == "strong" and packs["gitpack"]["host_version"] == ">=0.1"
    assert packs["zippack"]["requirements"] == ["pfb-purelib", "pfb-extralib>=2"]
    assert manifest["target"] == {"platforms": [LINUX, "win_amd64"], "python": "3.11", "implementation": "cp"}
    assert index.fetched("pfb_nativelib-1.0-py3-none-win_amd64.whl") == 1  # downloaded, not installable here
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != CACHE_DIR]

    home, venv = target
    assert cli_json("bundle", "verify", str(bundle), home=home)["digest"] == made["digest"]
    index_requests = len(index.requests)
    done = cli_json("bundle", "install", str(bundle), "--yes", home=home)
    assert done["changed"] and {p["name"] for p in done["packs"]} == {"gitpack", "zippack"}
    assert len(index.requests) == index_requests  # the install never asked the index
    assert {p.name for p in PackManager(home).installed()} == {"gitpack", "zippack"}
    have = installed_packages(venv)
    assert {k: have.get(k) for k in ("pfb-nativelib", "pfb-purelib", "pfb-extralib")} == \
        {"pfb-nativelib": "1.0", "pfb-purelib": "1.0", "pfb-extralib": "2.0"}
    tag = subprocess.run([venv, "-c", "import pfb_nativelib; print(pfb_nativelib.TAG)"], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert tag == f"py3-none-{LINUX}"  # pip chose this machine's wheel from the two-platform wheelhouse


def test_pip_download_reaches_the_loopback_index_offline(index: Index, tmp_path: Path) -> None:
    """The index fixture is a real PEP 503 index: pip itself downloads a foreign wheel from it, no cache."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir", "--index-url",
                           index.simple, "--only-binary=:all:", "--platform", "macosx_11_0_arm64",
                           "--python-version", "3.11", "--implementation", "cp", "--dest", str(tmp_path / "d"),
                           "pfb-maconly"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["pfb_maconly-1.0-py3-none-macosx_11_0_arm64.whl"]


def test_missing_wheel_for_a_platform_names_dependency_and_platform(index: Index, gitpack: Path, maker: Home,
                                                                    tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.yaml", [
        {"name": "gitpack", "source": f"git+file://{gitpack}", "version": "v1.0", "dependencies": ["pfb-winonly"]}])
    out = tmp_path / "dist"
    failed = cli_json("bundle", "create", "--catalog", str(catalog), "--platform", LINUX, "--python-version", "3.11",
                      "--index-url", index.simple, "--out", str(out), home=maker, code=2)
    assert failed["reason"] == "no wheel"
    assert "pfb-winonly" in failed["error"] and LINUX in failed["error"] and "'gitpack'" in failed["error"]
    assert not list(out.glob("*.pfb")) and not [p for p in out.iterdir() if p.name.startswith(".studio")]
    # the same catalog for Windows works: the Windows-only wheel is what it needs
    built = build_from_catalog(maker, catalog, out, platforms=["win_amd64"], python="3.11", index_url=index.simple)
    assert [w.name for w in built.bundle.manifest.wheels] == ["pfb-nativelib", "pfb-winonly"]
    assert built.packs_reused == ["gitpack"]  # fetched by the failed run, verified, reused


@pytest.mark.parametrize(("change", "expected"), [
    ({"source": "ftp://example.com/x.zip"}, "bad URL 'ftp://example.com/x.zip'"),
    ({"source": "https:///x.zip"}, "no host"),
    ({"source": "https://example.com:99999x/x.zip"}, "port"),
    ({"source": "https://example.com/x"}, "must end in"),
    ({"source": "git+file:///nowhere/repo"}, "does not exist"),
    ({"sha256": "abc"}, "not 64 hexadecimal digits"),
    ({"colour": "red"}, "unknown field 'colour'"),
    ({"security_level": "paranoid"}, "security_level 'paranoid'"),
    ({"host_version": "sometimes"}, "not a version specifier"),
    ({"dependencies": ["not a requirement!!"]}, "not a valid requirement"),
    ({"name": "../escape"}, "not a usable pack name"),
])
def test_bad_entries_are_refused_naming_the_entry(index: Index, maker: Home, tmp_path: Path,
                                                   change: dict[str, object], expected: str) -> None:
    entry: dict[str, object] = {"name": "zippack", "source": f"{index.url}/archives/zippack-1.0.tar.gz", **change}
    catalog = write_catalog(tmp_path / "c.yaml", [entry])
    out = tmp_path / "dist"
    with pytest.raises(BundleError, match="catalog entry") as caught:
        build_from_catalog(maker, catalog, out, platforms=[LINUX], python="3.11", index_url=index.simple)
    assert expected in caught.value.message and caught.value.user_error
    assert not out.exists()  # refused before anything was written
    assert not index.requests


def test_wrong_hash_bad_git_ref_and_bad_yaml(index: Index, gitpack: Path, maker: Home, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    wrong = write_catalog(tmp_path / "w.yaml", [
        {"name": "zippack", "source": f"{index.url}/archives/zippack-1.0.tar.gz", "sha256": "0" * 64}])
    failed = cli_json("bundle", "create", "--catalog", str(wrong), "--platform", LINUX, "--python-version", "3.11",
                      "--index-url", index.simple, "--out", str(out), home=maker, code=2)
    assert failed["reason"] == "hash mismatch" and "catalog entry 'zippack'" in failed["error"]
    assert "sha256 mismatch" in failed["error"] and not list(out.glob("*.pfb"))

    ref = write_catalog(tmp_path / "r.yaml", [{"name": "g", "source": f"git+file://{gitpack}", "version": "v9"}])
    with pytest.raises(BundleError, match="catalog entry 'g': .* has no branch or tag 'v9'"):
        build_from_catalog(maker, ref, out, platforms=[LINUX], python="3.11", index_url=index.simple)

    bad = tmp_path / "bad.yaml"
    bad.write_text("packs:\n  - name: x\n   source: y\n", encoding="utf-8")
    done = cli("bundle", "create", "--catalog", str(bad), "--platform", LINUX, "--python-version", "3.11",
               "--out", str(out), home=maker)
    assert done.returncode == 2 and "not valid YAML (line 3" in done.stderr and "Traceback" not in done.stderr
    top = write_catalog(tmp_path / "t.json", [{"name": "x", "source": "registry:x", "version": "1"}], extra=1)
    with pytest.raises(BundleError, match="unknown field 'extra' at the top level"):
        build_from_catalog(maker, top, out, platforms=[LINUX], python="3.11")
    fine = write_catalog(tmp_path / "f.json", [{"name": "x", "source": "registry:x", "version": "1"}])
    with pytest.raises(BundleError, match="not a pip platform tag"):
        build_from_catalog(maker, fine, out, platforms=["win amd64"], python="3.11")
    with pytest.raises(BundleError, match="not a Python version like 3.11"):
        build_from_catalog(maker, fine, out, platforms=[LINUX], python="311")


def test_interrupted_build_resumes_without_fetching_again(index: Index, gitpack: Path, maker: Home,
                                                          target: tuple[Home, str], tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "studio.yaml", standard_packs(index, gitpack), name="studio")
    out = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if k != "PARTYFLOW_HOME"}
    env[PAUSE_ENV] = f"bundle-build-wheels-{LINUX}"  # both packs and the Linux wheels fetched; then killed
    child = subprocess.Popen([sys.executable, "-m", "partyflow", "bundle", "create", "--catalog", str(catalog),
                              "--platform", LINUX, "--platform", "win_amd64", "--python-version", "3.11",
                              "--index-url", index.simple, "--out", str(out), "--json", "--home", str(maker.root)],
                             cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stderr is not None
    for line in child.stderr:
        if line.startswith(PAUSE_MARKER):
            break
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert not list(out.glob("*.pfb"))  # no bundle, not even half of one
    assert index.fetched("zippack-1.0.tar.gz") == 1 and index.fetched(f"{LINUX}.whl") == 1
    assert index.fetched("win_amd64.whl") == 0

    result = build_from_catalog(maker, catalog, out, platforms=[LINUX, "win_amd64"], python="3.11",
                                index_url=index.simple)
    assert result.packs_reused == ["gitpack", "zippack"] and result.packs_fetched == []
    assert f"pfb_nativelib-1.0-py3-none-{LINUX}.whl" in result.wheels_reused
    assert "pfb_nativelib-1.0-py3-none-win_amd64.whl" in result.wheels_downloaded
    assert index.fetched("zippack-1.0.tar.gz") == 1 and index.fetched(f"{LINUX}.whl") == 1  # not again

    # a cached file that changed is not trusted: it is fetched again
    cached = next((out / CACHE_DIR / "packs").glob("*/zippack.zip"))
    cached.write_bytes(b"tampered")
    again = build_from_catalog(maker, catalog, out, platforms=[LINUX, "win_amd64"], python="3.11",
                               index_url=index.simple)
    assert again.packs_fetched == ["zippack"] and index.fetched("zippack-1.0.tar.gz") == 2
    home, _ = target
    assert cli_json("bundle", "verify", str(again.bundle.path), home=home)["digest"] == again.bundle.digest


def test_host_version_is_checked_at_install(index: Index, gitpack: Path, maker: Home, target: tuple[Home, str],
                                            tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.yaml", [
        {"name": "gitpack", "source": f"git+file://{gitpack}", "version": "v1.0", "host_version": ">=99"}])
    built = build_from_catalog(maker, catalog, tmp_path / "dist", platforms=[LINUX], python="3.11",
                               index_url=index.simple)
    home, _ = target
    failed = cli_json("bundle", "install", str(built.bundle.path), "--yes", home=home, code=2)
    assert failed["reason"] == "wrong host" and ">=99" in failed["error"]
    assert not PackManager(home).installed()


def test_registry_source_offline_copy_and_required_security_level(maker: Home, tmp_path: Path) -> None:
    """A Comfy Registry entry (a loopback stand-in with the registry's JSON), an entry built from its local
    offline copy while its URL is unreachable, and a pack whose scan fails the level its entry requires."""
    import shutil
    import tarfile

    from tests.manager_catalog.helpers import make_pack, serve

    src = tmp_path / "src"
    make_pack(src, "regpack")
    archive = tmp_path / "regpack.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(src / "regpack" / "__init__.py", "regpack/__init__.py")
    blob = archive.read_bytes()
    holder: list[str] = []

    def registry(path: str) -> tuple[int, str, bytes] | None:
        if path.startswith("/nodes/comfyui-regpack/install"):
            body = {"id": "v1", "node_id": "comfyui-regpack", "version": "1.2.0",
                    "downloadUrl": f"{holder[0]}/cdn/regpack-1.2.0.zip", "dependencies": [], "status":
                    "NodeVersionStatusActive"}
            return 200, "application/json", json.dumps(body).encode()
        return (200, "application/zip", blob) if path == "/cdn/regpack-1.2.0.zip" else None

    vendor = tmp_path / "vendor"
    make_pack(tmp_path / "offline-src", "offpack")
    vendor.mkdir()
    with tarfile.open(vendor / "offpack-2.0.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "offline-src" / "offpack", arcname="offpack")
    with serve(registry) as server:
        holder.append(server.url)
        maker.config_file.write_text(f'[manager]\nregistry_url = "{server.url}"\n', encoding="utf-8")
        catalog = write_catalog(tmp_path / "c.yaml", [
            {"name": "regpack", "source": "registry:comfyui-regpack", "version": "1.2.0",
             "sha256": sha256_of(archive)},
            {"name": "offpack", "source": "https://127.0.0.1:9/never/offpack-2.0.tar.gz", "version": "2.0",
             "offline_path": "vendor/offpack-2.0.tar.gz", "sha256": sha256_of(vendor / "offpack-2.0.tar.gz")}])
        built = build_from_catalog(maker, catalog, tmp_path / "dist", platforms=[LINUX], python="3.11")
        assert "/nodes/comfyui-regpack/install?version=1.2.0" in server.requests
    packs = {p.name: p for p in built.bundle.manifest.packs}
    assert packs["regpack"].version == "1.2.0" and packs["offpack"].version == "2.0"
    assert not built.bundle.manifest.wheels

    corpus = Path(__file__).resolve().parents[1] / "security" / "corpus" / "malicious" / "m07_ssh_key_theft"
    shutil.copytree(corpus, tmp_path / "thief")
    strict = write_catalog(tmp_path / "s.yaml", [
        {"name": "thief", "source": "https://127.0.0.1:9/thief.zip", "offline_path": "thief",
         "security_level": "strong"}])
    with pytest.raises(BundleError, match="catalog entry 'thief': its scan fails security level strong") as caught:
        build_from_catalog(maker, strict, tmp_path / "dist2", platforms=[LINUX], python="3.11")
    assert caught.value.reason == "security" and not list((tmp_path / "dist2").glob("*.pfb"))


def test_yaml_versions_stay_text_and_json_catalogs_read(tmp_path: Path) -> None:
    from partyflow.manager.bundle_catalog import load_build_catalog

    archive = tmp_path / "a.zip"
    archive.write_bytes(b"")
    (tmp_path / "c.yaml").write_text(f"packs:\n  - name: a\n    source: file://{archive}\n    version: 1.10\n",
                                     encoding="utf-8")
    loaded = load_build_catalog(tmp_path / "c.yaml")
    assert loaded.name == "c" and loaded.entries[0].version == "1.10" and loaded.entries[0].kind == "archive"
    (tmp_path / "c.json").write_text('{"name": "j", "packs": [{"name": "a", "source": "registry:a", "version": 2}]}',
                                     encoding="utf-8")
    assert load_build_catalog(tmp_path / "c.json").entries[0].version == "2"
    (tmp_path / "bad.json").write_text('{"packs": [}', encoding="utf-8")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_build_catalog(tmp_path / "bad.json")
    with pytest.raises(BundleError, match="no such catalog file"):
        load_build_catalog(tmp_path / "none.yaml")
