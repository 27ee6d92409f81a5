"""Without the MCP SDK, the MCP nodes say which extra to install (issue 11: `research_agent.json` showed only
`No module named 'mcp_types'`)."""

from __future__ import annotations

import sys

import pytest

from partyflow.nodes.comfy_compat import install_compat_modules

install_compat_modules()  # the pack imports ComfyUI's host modules like any ComfyUI pack

from partyflow.builtin_nodes.agents.mcp_nodes import mcp_library  # noqa: E402


@pytest.mark.parametrize("missing", ["mcp", "mcp_types"])
def test_a_missing_sdk_package_names_the_extra(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    for name in [n for n in sys.modules if n.startswith(("partyflow.tools.mcp", f"{missing}."))]:
        monkeypatch.delitem(sys.modules, name)  # submodules imported by earlier tests would satisfy the import
    monkeypatch.setitem(sys.modules, missing, None)  # import now fails with ModuleNotFoundError(name=missing)
    with pytest.raises(RuntimeError, match=r"pip install 'partyflow\[mcp\]'"):
        mcp_library()
