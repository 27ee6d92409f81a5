"""Signed catalogs through the real channel code: verified on refresh and on load, required when configured."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from partyflow.config import Home
from partyflow.manager import catalog
from partyflow.manager.keys import Keyring
from partyflow.manager.signing import sign_catalog

from .conftest import cli_json, configure


def write_catalog(folder: Path, document: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "custom-node-list.json").write_text(json.dumps(document), encoding="utf-8")


@pytest.fixture
def publisher(tmp_path: Path) -> Keyring:
    ring = Keyring(tmp_path / "publisher")
    ring.generate("acme")
    return ring


@pytest.fixture
def document() -> dict:
    data = b"not really a zip"
    return {"format": catalog.OUR_FORMAT, "custom_nodes": [
        {"id": "tool", "title": "Tool", "version": "1.0", "install_type": "archive", "files": ["packs/tool.zip"],
         "sha256": hashlib.sha256(data).hexdigest(), "publisher": "acme"}]}


def home_with_channel(tmp_path: Path, channel: Path, publisher: Keyring | None, **manager: object) -> Home:
    home = Home(tmp_path / "home").ensure()
    configure(home, **manager)
    text = home.config_file.read_text()
    home.config_file.write_text(text + f'channels = [{{name = "acme", url = "{channel.as_uri()}"}}]\n')
    if publisher is not None:
        Keyring(home).trust(publisher.export("acme"))
    return home


def test_signed_catalog_verifies_and_relative_archives_resolve(tmp_path: Path, publisher: Keyring,
                                                               document: dict) -> None:
    channel = tmp_path / "channel"
    write_catalog(channel, sign_catalog(document, publisher.signer()))
    home = home_with_channel(tmp_path, channel, publisher, require_signed_catalogs=True)
    assert catalog.refresh(home) == {"acme": None}
    entry = catalog.load(home).find("tool")
    assert entry.signature and entry.signature.startswith("ed25519:")
    assert entry.files == ((channel / "packs" / "tool.zip").as_uri(),)  # relative to the channel


def test_tampered_catalog_is_refused_and_the_old_cache_kept(tmp_path: Path, publisher: Keyring,
                                                            document: dict) -> None:
    channel = tmp_path / "channel"
    signed = sign_catalog(document, publisher.signer())
    write_catalog(channel, signed)
    home = home_with_channel(tmp_path, channel, publisher)
    assert catalog.refresh(home) == {"acme": None}

    evil = json.loads(json.dumps(signed))
    evil["custom_nodes"][0]["sha256"] = "0" * 64  # point the entry at another archive
    write_catalog(channel, evil)
    error = catalog.refresh(home)["acme"]
    assert error is not None and "bad signature" in error
    assert catalog.load(home).find("tool").sha256 == document["custom_nodes"][0]["sha256"]

    cached = catalog.cache_dir(home) / "acme" / "custom-node-list.json"
    cached.write_text(json.dumps(evil))  # the cache is checked when read, too
    with pytest.raises(catalog.CatalogError, match="bad signature"):
        catalog.load(home)


def test_unknown_signer_and_required_signatures(tmp_path: Path, publisher: Keyring, document: dict) -> None:
    channel = tmp_path / "channel"
    write_catalog(channel, sign_catalog(document, publisher.signer()))
    home = home_with_channel(tmp_path, channel, None)  # nobody trusted the publisher
    error = catalog.refresh(home)["acme"]
    assert error is not None and "unknown key" in error and "partyflow keys trust" in error

    unsigned = tmp_path / "unsigned"
    write_catalog(unsigned, document)
    strict = home_with_channel(tmp_path / "s", unsigned, publisher, require_signed_catalogs=True)
    error = catalog.refresh(strict)["acme"]
    assert error is not None and "unsigned" in error
    lenient = home_with_channel(tmp_path / "l", unsigned, publisher)
    assert catalog.refresh(lenient) == {"acme": None}  # signatures are optional unless required


def test_cli_signs_and_verifies_a_catalog_file(tmp_path: Path, publisher: Keyring, document: dict) -> None:
    path = tmp_path / "custom-node-list.json"
    path.write_text(json.dumps(document))
    signer_home = Home(tmp_path / "publisher")
    assert cli_json("keys", "sign", str(path), home=signer_home)["key"] == "acme"
    assert json.loads(path.read_text())["signature"].startswith("ed25519:")
    assert cli_json("keys", "verify", str(path), home=signer_home)["detail"] == "1 signed entries"
    stranger = Home(tmp_path / "stranger")
    assert cli_json("keys", "verify", str(path), home=stranger, code=2)["reason"] == "unknown key"
