"""Writing one `[providers.NAME]` table of a home's config.toml, leaving the rest of the file as the user wrote it.

Why text editing and not a TOML library: the standard library only reads TOML, and a rewrite from a parsed document
would drop the user's comments and layout. The table is replaced in place (its header line through the line before
the next table header, subtables `[providers.NAME.x]` too) or appended; the result is parsed again before it
replaces the file (atomically), and must give back exactly the fields written, so a file laid out in a way this
editor does not understand (dotted keys, inline tables) is refused rather than damaged.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path

from partyflow.config import Home
from partyflow.llm.config import ProviderConfig
from partyflow.llm.errors import ProviderConfigError

EDITABLE = ("type", "base_url", "model", "api_key_env")
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def set_provider(home: Home, name: str, fields: Mapping[str, str | None]) -> ProviderConfig:
    """Create or replace provider `name` with `fields` (type, base_url, model, api_key_env: the *name* of the
    environment variable holding the key, never a key). Raises ProviderConfigError saying what is wrong."""
    if not NAME.match(name):
        raise ProviderConfigError(f"provider name {name!r} must be letters, digits, '-' or '_' (up to 64)")
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise ProviderConfigError(f"only {', '.join(EDITABLE)} can be set here, not {', '.join(unknown)}",
                                  hint="edit config.toml for the other settings")
    values = {k: v.strip() for k, v in fields.items() if isinstance(v, str) and v.strip()}
    env = values.get("api_key_env")
    if env is not None and not ENV_NAME.match(env):
        raise ProviderConfigError("api_key_env must be the NAME of an environment variable (like OPENAI_API_KEY), "
                                  "not a key", hint="set the key itself in that variable, outside partyflow")
    try:
        config = ProviderConfig.model_validate({"name": name, **values})
    except ValueError as exc:
        raise ProviderConfigError(f"provider {name!r}: {exc}") from None
    path = home.config_file
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    new = _replace_table(old, name, values)
    try:
        parsed = tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:
        raise ProviderConfigError(f"{path} could not be updated ({exc})", hint="edit it by hand") from None
    if parsed.get("providers", {}).get(name) != values:
        raise ProviderConfigError(f"{path} defines [providers.{name}] in a way this editor does not change",
                                  hint="edit the file by hand")
    _write(path, new)
    return config


def _replace_table(text: str, name: str, values: Mapping[str, str]) -> str:
    lines = text.splitlines(keepends=True)
    keep: list[str] = []
    inside = False
    at: int | None = None
    for line in lines:
        header = _HEADER.match(line)
        if header:
            key = header.group(1).replace('"', "").replace("'", "").replace(" ", "")
            inside = key == f"providers.{name}" or key.startswith(f"providers.{name}.")
            if inside and at is None:
                at = len(keep)
        if not inside:
            keep.append(line)
    block = [f"[providers.{name}]\n", *(f"{k} = {json.dumps(v)}\n" for k, v in values.items()), "\n"]
    if at is None:
        if keep and not keep[-1].endswith("\n"):
            keep[-1] += "\n"
        if keep and keep[-1].strip():
            keep.append("\n")
        at = len(keep)
    return "".join(keep[:at] + block + keep[at:])


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o777)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
