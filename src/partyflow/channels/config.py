"""`[channels.NAME]` tables of config.toml: which platform, which published workflow answers, whose messages.

Credentials are named, never written: each `*_env` key holds the name of an environment variable, and a table
holding something that looks like a secret value is refused. Example:

    [channels.helpdesk]
    type = "slack"                       # slack | telegram | feishu | discord | webhook
    model = "support-bot"                # a published workflow (its model name)
    bot_token_env = "SLACK_BOT_TOKEN"
    signing_secret_env = "SLACK_SIGNING_SECRET"  # or app_token_env = "SLACK_APP_TOKEN" for Socket Mode
    # feishu: mode = "long_connection" receives over lark's websocket (app id and secret only)
    allow_chats = ["C0123456"]           # optional: only these chats/channels/groups
    allow_users = ["U042"]               # optional: only these users
    session = "thread"                   # chat | thread | user: what one conversation (memory session) is
    rate_per_minute = 20                 # answers per chat and minute; more are told to wait
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PLATFORMS: dict[str, tuple[str, ...]] = {  # the credentials each platform needs, by key
    "slack": ("bot_token_env", "signing_secret_env"),
    "telegram": ("bot_token_env", "secret_token_env"),
    "feishu": ("app_id_env", "app_secret_env", "verification_token_env"),
    "webhook": ("secret_env",),
    "discord": ("bot_token_env",),
}
OPTIONAL_CREDENTIALS = {"feishu": ("encrypt_key_env",), "slack": ("app_token_env",)}
SESSIONS = ("chat", "thread", "user")
MODES = {"feishu": ("event_subscription", "long_connection")}  # how events arrive; the first is the default
_SECRETISH = ("token", "secret", "password", "key")


class ChannelConfigError(ValueError):
    """A channel table that cannot work; the message names the table and the key."""


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    type: str
    model: str
    credentials: Mapping[str, str]  # key ("bot_token_env") -> variable name
    allow_chats: frozenset[str] | None = None
    allow_users: frozenset[str] | None = None
    session: str = "chat"
    rate_per_minute: int = 20
    owner: str = "default"  # whose published workflows (the user folder) the channel answers with
    api_base: str | None = None  # the platform's API address, for self-hosted or proxied platforms
    mode: str | None = None  # feishu: "event_subscription" (HTTP, the default) or "long_connection" (websocket)

    def secret(self, key: str, environ: Mapping[str, str] = os.environ) -> str:
        """The value of a credential, or an error naming the variable to set."""
        variable = self.credentials.get(key)
        if variable is None:
            raise ChannelConfigError(f"[channels.{self.name}] has no {key}")
        value = environ.get(variable, "")
        if not value.strip():
            raise ChannelConfigError(f"[channels.{self.name}]: the environment variable {variable} ({key}) is not "
                                     "set")
        return value

    def optional_secret(self, key: str, environ: Mapping[str, str] = os.environ) -> str | None:
        variable = self.credentials.get(key)
        return environ.get(variable) or None if variable else None

    def missing_credentials(self, environ: Mapping[str, str] = os.environ) -> list[str]:
        table = {**self.credentials, "mode": self.mode}
        return [f"{self.credentials[k]} ({k})" for k in required_credentials(self.type, table)
                if not environ.get(self.credentials[k])]


def required_credentials(kind: str, table: Mapping[str, Any]) -> tuple[str, ...]:
    """Slack in Socket Mode (an `app_token_env`) needs the app-level token instead of the signing secret."""
    if kind == "slack" and "app_token_env" in table:
        return ("bot_token_env", "app_token_env")
    if kind == "feishu" and table.get("mode") == "long_connection":  # the connection itself is authenticated
        return ("app_id_env", "app_secret_env")
    return PLATFORMS[kind]


def load_channels(raw: Mapping[str, Any]) -> dict[str, ChannelConfig]:
    """Every `[channels.NAME]` table of a parsed config.toml, checked; ChannelConfigError for the first bad one."""
    tables = raw.get("channels", {})
    if not isinstance(tables, Mapping):
        raise ChannelConfigError("[channels] must be a table of [channels.NAME] tables")
    return {str(name): parse_channel(str(name), table) for name, table in tables.items()}


def parse_channel(name: str, table: Any) -> ChannelConfig:
    where = f"[channels.{name}]"
    if not isinstance(table, Mapping):
        raise ChannelConfigError(f"{where} must be a table")
    kind = table.get("type")
    if kind not in PLATFORMS:
        raise ChannelConfigError(f"{where} type must be one of {', '.join(PLATFORMS)}, not {kind!r}")
    for key, value in table.items():
        if any(word in key for word in _SECRETISH) and not key.endswith("_env"):
            raise ChannelConfigError(f"{where} {key}: secrets never go in config.toml; set {key}_env to the name "
                                     "of an environment variable holding it")
        if key.endswith("_env") and not (isinstance(value, str) and value.replace("_", "").isalnum()):
            raise ChannelConfigError(f"{where} {key} must name an environment variable (e.g. SLACK_BOT_TOKEN)")
    mode = table.get("mode")
    if mode is not None and mode not in MODES.get(kind, ()):
        choices = " or ".join(f'"{m}"' for m in MODES.get(kind, ()))
        raise ChannelConfigError(f"{where} mode must be {choices}" if choices else
                                 f"{where} mode is not a setting of {kind} channels")
    known = set(PLATFORMS[kind]) | set(OPTIONAL_CREDENTIALS.get(kind, ()))
    missing = [key for key in required_credentials(kind, table) if key not in table]
    if missing:
        raise ChannelConfigError(f"{where} needs {', '.join(missing)} (names of environment variables)")
    model = table.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ChannelConfigError(f"{where} model must name a published workflow")
    session = table.get("session", "chat")
    if session not in SESSIONS:
        raise ChannelConfigError(f"{where} session must be one of {', '.join(SESSIONS)}")
    rate = table.get("rate_per_minute", 20)
    if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1:
        raise ChannelConfigError(f"{where} rate_per_minute must be a positive integer")
    return ChannelConfig(
        name=name, type=kind, model=model.strip(),
        credentials={k: str(v) for k, v in table.items() if k in known},
        allow_chats=_id_set(table.get("allow_chats"), where, "allow_chats"),
        allow_users=_id_set(table.get("allow_users"), where, "allow_users"),
        session=session, rate_per_minute=rate, owner=str(table.get("owner", "default")),
        api_base=str(table["api_base"]).rstrip("/") if table.get("api_base") else None, mode=mode,
    )


def _id_set(value: Any, where: str, key: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise ChannelConfigError(f"{where} {key} must be a list of ids")
    return frozenset(str(v) for v in value)
