"""Catalogs: ComfyUI-Manager's real format (an excerpt of the 4.3 data), ours, channels, the cache, lookups."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from partyflow.config import Home
from partyflow.manager import catalog
from partyflow.manager.catalog import CatalogError, UnknownPackError
from partyflow.manager.sources import SourceSpec

from .conftest import DATA, write_config
from .helpers import serve

CM43 = DATA / "cm43"


def _channel(home: Home, *channels: tuple[str, str, int]) -> None:
    items = ", ".join(f'{{name = "{n}", url = "{u}", priority = {p}}}' for n, u, p in channels)
    write_config(home, f"[manager]\nchannels = [{items}]\n")


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tidy/__init__.py", "NODE_CLASS_MAPPINGS = {}\n")
    return buffer.getvalue()


def _ours(url: str, data: bytes, version: str = "1.2.0") -> dict:
    return {"format": "partyflow-catalog/1", "custom_nodes": [{
        "id": "tidy-nodes", "title": "Tidy Nodes", "author": "us", "reference": "https://example.org/tidy",
        "files": [url], "install_type": "archive", "version": version,
        "sha256": hashlib.sha256(data).hexdigest(), "publisher": "us", "signature": None,
        "description": "tidy"}]}


def test_reads_the_comfyui_manager_excerpt() -> None:
    data = json.loads((CM43 / "custom-node-list.json").read_text())
    entries = catalog.parse_catalog(data, channel="cm")
    assert len(entries) == len(data["custom_nodes"]) == 31
    kinds = {e.install_type for e in entries}
    assert kinds == {"git-clone", "copy", "unzip"}
    impact = next(e for e in entries if e.id == "comfyui-impact-pack")
    assert impact.files == ("https://github.com/ltdrdata/ComfyUI-Impact-Pack",)
    assert "comfyui-impact-pack" in impact.aliases and "comfyui impact pack" in impact.aliases
    with_pip = [e for e in entries if e.pip]
    assert with_pip and all(isinstance(p, str) for e in with_pip for p in e.pip)
    no_id = [e for e in entries if "id" not in next(r for r in data["custom_nodes"] if r["title"] == e.title)]
    assert all(e.id for e in no_id)  # the repository name stands in for a missing id


def test_channels_priority_cache_and_offline(home: Home, tmp_path: Path) -> None:
    archive = _zip_bytes()
    low = tmp_path / "low"
    low.mkdir()
    (low / "custom-node-list.json").write_text(json.dumps(_ours("https://unused.invalid/t.zip", b"old", "1.0.0")))
    routes: dict = {}
    with serve(routes) as server:
        routes["/cat/custom-node-list.json"] = _ours(f"{server.url}/tidy.zip", archive, "1.2.0")
        routes["/cat/extension-node-map.json"] = {"https://example.org/tidy": [["TidyNode"], {"title_aux": "t"}]}
        routes["/tidy.zip"] = archive
        _channel(home, ("low", low.as_uri(), 1), ("high", f"{server.url}/cat", 10))
        assert catalog.refresh(home) == {"high": None, "low": None}
        entry = catalog.load(home, refresh_missing=False).find("tidy-nodes")
        assert (entry.channel, entry.version) == ("high", "1.2.0")
        path = catalog.fetch_archive(home, entry)
    assert path.read_bytes() == archive
    # the server is gone: listing, lookups and installs from the cached archive still work
    cat = catalog.load(home, refresh_missing=False)
    assert set(cat.latest()) == {"tidy-nodes"}
    assert cat.find_pack_for_nodes(["TidyNode", "Nope"]) == {"TidyNode": entry, "Nope": None}
    spec = catalog.resolve("Tidy-Nodes", home)
    assert spec == SourceSpec(kind="archive", location=str(path), version="1.2.0",
                              sha256=hashlib.sha256(archive).hexdigest(), name="tidy-nodes")
    older = catalog.resolve("tidy-nodes@1.0.0", home)
    assert (older.kind, older.version) == ("url", "1.0.0")
    assert catalog.refresh(home)["high"] is not None  # unreachable now, but the cache stays
    assert catalog.load(home, refresh_missing=False).find("tidy-nodes").channel == "high"


def test_wrong_archive_hash_is_refused(home: Home) -> None:
    routes: dict = {}
    with serve(routes) as server:
        bad = _ours(f"{server.url}/tidy.zip", b"something else")
        routes["/custom-node-list.json"] = bad
        routes["/tidy.zip"] = _zip_bytes()
        _channel(home, ("one", server.url, 0))
        entry = catalog.load(home).find("tidy-nodes")
        with pytest.raises(CatalogError, match="sha256"):
            catalog.fetch_archive(home, entry)
    assert not list(catalog.archive_cache(home).glob("*"))


def test_resolve_git_entries_and_suggestions(home: Home) -> None:
    _channel(home, ("cm", CM43.as_uri(), 0))
    spec = catalog.resolve("comfyui-impact-pack", home)
    assert spec == SourceSpec(kind="git", location="https://github.com/ltdrdata/ComfyUI-Impact-Pack")
    pinned = catalog.resolve("ComfyUI-Impact-Pack@abc123", home)
    assert pinned.version == "abc123"
    with pytest.raises(UnknownPackError) as info:
        catalog.resolve("comfyui-impact-pak", home)
    assert "comfyui-impact-pack" in info.value.suggestions
    assert "did you mean" in str(info.value)


def test_find_pack_for_nodes_uses_the_real_node_map(home: Home) -> None:
    _channel(home, ("cm", CM43.as_uri(), 0))
    found = catalog.find_pack_for_nodes(["SAMLoader", "DF_Integer", "ApplyLBW //Inspire", "NoSuchNode"], home)
    assert found["SAMLoader"] is not None and found["SAMLoader"].id == "comfyui-impact-pack"  # preemption
    assert found["DF_Integer"] is not None and found["DF_Integer"].id == "derfuu"             # pattern
    assert found["ApplyLBW //Inspire"] is not None and found["ApplyLBW //Inspire"].id == "inspire"
    assert found["NoSuchNode"] is None


def test_bad_documents_and_config(home: Home, tmp_path: Path) -> None:
    with pytest.raises(CatalogError):
        catalog.parse_catalog({"nodes": []})
    with pytest.raises(CatalogError, match="install_type"):
        catalog.parse_catalog({"format": "partyflow-catalog/1",
                               "custom_nodes": [{"id": "x", "install_type": "bogus", "files": []}]})
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "custom-node-list.json").write_text("{not json")
    _channel(home, ("broken", broken.as_uri(), 0))
    assert "not valid JSON" in (catalog.refresh(home)["broken"] or "")
    write_config(home, "[manager]\nchannels = [{name = 'a/b', url = 'file:///x'}]\n")
    from partyflow.config import ConfigError

    with pytest.raises(ConfigError, match="channel name"):
        catalog.channels(home)


def test_remote_head_never_reads_a_recorded_location_as_a_git_option(tmp_path: Path) -> None:
    """A pack record (restored from a backup, say) whose location starts with '-' must not run a command."""
    import subprocess

    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    marker = tmp_path / "ran"
    assert catalog._remote_head(f"--upload-pack=touch {marker};git-upload-pack", str(repo), 10) is None
    assert not marker.exists()
