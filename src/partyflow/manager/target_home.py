"""A ComfyUI installation seen as a partyflow home, so every manager operation can act on it unchanged.

The manager, snapshots, bundles, reports and backups all work on a `Home`. `TargetHome` is a Home whose pack folders
are the ComfyUI install's (`<comfyui>/custom_nodes`, `.disabled/` inside it, as ComfyUI-Manager keeps them) and whose
own state (journal, packs.json, audit log, keys, wheelhouse) lives in `<comfyui>/user/__partyflow/`. Settings come
from that folder's `config.toml` when it has one, else from the partyflow home the command was started with, so a
user's security level applies to their ComfyUI too unless the install says otherwise. Python packages go to the
interpreter ComfyUI runs in (`target.python`), which `dependencies.target_python` honours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from partyflow.config import Home
from partyflow.manager.comfyui_target import ComfyUITarget

__all__ = ["TargetHome"]


@dataclass(frozen=True)
class TargetHome(Home):
    """`root` is the state folder; `target` the validated ComfyUI; `settings_home` where settings fall back to."""

    target: ComfyUITarget
    settings_home: Path | None = None

    @classmethod
    def of(cls, target: ComfyUITarget, settings_home: Path | None = None) -> TargetHome:
        return cls(root=target.state_dir, target=target, settings_home=settings_home)

    @property
    def custom_nodes(self) -> Path:
        return self.target.custom_nodes

    @property
    def models(self) -> Path:
        return self.target.root / "models"

    @property
    def input(self) -> Path:
        return self.target.root / "input"

    @property
    def output(self) -> Path:
        return self.target.root / "output"

    @property
    def temp(self) -> Path:
        return self.target.root / "temp"

    @property
    def user(self) -> Path:
        return self.target.root / "user"

    @property
    def snapshots(self) -> Path:
        """ComfyUI-Manager's snapshot folder: both tools list and restore the same files."""
        return self.target.manager_snapshots

    @property
    def config_file(self) -> Path:
        own = self.root / "config.toml"
        if own.is_file() or self.settings_home is None:
            return own
        return self.settings_home / "config.toml"

    @property
    def python(self) -> str:
        return str(self.target.python)

    def host_requirements(self) -> list[str]:
        """ComfyUI's own requirements.txt lines: the packages a pack must not change (`protected_packages`)."""
        path = self.target.root / "requirements.txt"
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]

    def ensure(self) -> TargetHome:
        """Only partyflow's state folder and custom_nodes: nothing else is created inside someone's ComfyUI."""
        for path in (self.root, self.custom_nodes):
            path.mkdir(parents=True, exist_ok=True)
        return self
