"""Pack loading: real pack folders on disk, each failure mode reported against its own pack."""

from __future__ import annotations

import logging
import pickle
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from partyflow.config import Home
from partyflow.nodes.host import HostContext
from partyflow.nodes.loader import (
    PackLoadResult,
    format_import_times,
    load_module_pack,
    load_pack,
    load_packs,
)
from partyflow.nodes.registry import NodeRegistry

NODE = '''
class {name}:
    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"text": ("STRING", {{}})}}}}
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    def run(self, text):
        return (text,)
'''


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def make_host(root: Path) -> HostContext:
    return HostContext(home=Home(root).ensure(), registry=NodeRegistry())


def good_pack(custom_nodes: Path, name: str = "good_pack") -> Path:
    pack = custom_nodes / name
    write(pack / "nodes.py", NODE.format(name="Echo") + NODE.format(name="Shout"))
    write(pack / "__init__.py", """
        from .nodes import Echo, Shout
        NODE_CLASS_MAPPINGS = {"Echo": Echo, "Shout": Shout}
        NODE_DISPLAY_NAME_MAPPINGS = {"Echo": "Echo Text"}
        WEB_DIRECTORY = "./web"
    """)
    write(pack / "web" / "ext.js", "// extension\n")
    return pack


@pytest.fixture(autouse=True)
def forget_loaded_packs() -> Iterator[None]:
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("custom_nodes.") or name.startswith("pf_test_"):
            del sys.modules[name]


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.SimpleNamespace]:
    """Events a hanging pack waits on, reachable from its code as `import _partyflow_test_gate`."""
    namespace = types.SimpleNamespace(entered=threading.Event(), release=threading.Event(),
                                      finished=threading.Event())
    monkeypatch.setitem(sys.modules, "_partyflow_test_gate", namespace)
    yield namespace
    namespace.release.set()


def test_good_pack_registers_its_nodes_with_display_names_and_web_directory(tmp_path: Path) -> None:
    host = make_host(tmp_path / "home")
    pack = good_pack(host.home.custom_nodes)

    result = load_pack(pack, host)

    assert result.ok, result.error
    assert (result.name, result.module_name, result.path) == ("good_pack", "custom_nodes.good_pack", pack)
    assert result.node_types == ("Echo", "Shout")
    assert result.web_directory == (pack / "web").resolve()
    assert host.registry.web_directories["good_pack"] == (pack / "web").resolve()
    entry = host.registry.entry("Echo")
    assert (entry.pack, entry.python_module, entry.display_name) == ("good_pack", "custom_nodes.good_pack", "Echo Text")
    assert host.registry.object_info("Shout")["Shout"]["python_module"] == "custom_nodes.good_pack"
    assert "custom_nodes.good_pack.nodes" in sys.modules  # the relative import resolved inside the pack


def test_loaded_node_objects_can_be_pickled(tmp_path: Path) -> None:
    host = make_host(tmp_path / "home")
    load_pack(good_pack(host.home.custom_nodes), host)
    echo = host.registry.entry("Echo").cls()
    assert type(pickle.loads(pickle.dumps(echo))) is type(echo)


def test_single_file_pack(tmp_path: Path) -> None:
    host = make_host(tmp_path / "home")
    path = write(host.home.custom_nodes / "solo.py", NODE.format(name="Solo") + 'NODE_CLASS_MAPPINGS = {"Solo": Solo}\n')
    result = load_pack(path, host)
    assert result.ok and result.node_types == ("Solo",) and result.module_name == "custom_nodes.solo"
    assert result.web_directory is None


def test_every_failure_is_reported_per_pack_and_never_stops_the_others(
        tmp_path: Path, gate: types.SimpleNamespace) -> None:
    host = make_host(tmp_path / "home")
    nodes = host.home.custom_nodes
    good_pack(nodes, "a_good")
    write(nodes / "b_hangs" / "__init__.py", """
        import _partyflow_test_gate as gate
        gate.entered.set()
        gate.release.wait(30)
        gate.finished.set()
        NODE_CLASS_MAPPINGS = {}
    """)
    write(nodes / "c_raises" / "__init__.py", "raise RuntimeError('needs a GPU library')\n")
    write(nodes / "d_exits" / "__init__.py", "import sys\nsys.exit(3)\n")
    write(nodes / "e_no_mappings" / "__init__.py", "VALUE = 1\n")
    write(nodes / "f_broken" / "__init__.py", NODE.format(name="Fine") + 'NODE_CLASS_MAPPINGS = {"Fine": Fine, "Bad": 42}\n')
    write(nodes / "g_not_a_pack" / "README.md", "just files\n")
    write(nodes / "h_single.py", NODE.format(name="Single") + 'NODE_CLASS_MAPPINGS = {"Single": Single}\n')
    good_pack(nodes / ".disabled", "off")
    good_pack(nodes, "off_too.disabled")
    good_pack(nodes, ".hidden")
    write(nodes / "__pycache__" / "x.pyc", "")
    write(nodes / "example.py.example", "raise SystemExit\n")
    write(nodes / "notes.txt", "not code\n")

    results = {r.name: r for r in load_packs([nodes, tmp_path / "missing"], host, timeout=0.5)}
    try:
        assert gate.entered.is_set()
    finally:
        gate.release.set()
    assert gate.finished.wait(5)  # the abandoned import thread ran to its end once released

    assert sorted(results) == ["a_good", "b_hangs", "c_raises", "d_exits", "e_no_mappings", "f_broken",
                               "g_not_a_pack", "h_single"]
    assert {name for name, r in results.items() if r.ok} == {"a_good", "h_single"}
    assert results["b_hangs"].timed_out and "0.5 seconds" in (results["b_hangs"].error or "")
    assert results["c_raises"].error == "RuntimeError: needs a GPU library"
    assert 'c_raises/__init__.py", line 1' in (results["c_raises"].traceback or "")
    assert results["d_exits"].error == "SystemExit: 3"
    assert "no NODE_CLASS_MAPPINGS" in (results["e_no_mappings"].error or "")
    assert "NODE_CLASS_MAPPINGS['Bad']" in (results["f_broken"].error or "")
    assert "no __init__.py" in (results["g_not_a_pack"].error or "")
    assert not any(r.timed_out for name, r in results.items() if name != "b_hangs")
    assert sorted(host.registry) == ["Echo", "Shout", "Single"]  # the broken pack registered nothing
    assert "custom_nodes.c_raises" not in sys.modules


def test_failed_import_leaves_no_half_loaded_modules(tmp_path: Path) -> None:
    host = make_host(tmp_path / "home")
    pack = host.home.custom_nodes / "half"
    write(pack / "helper.py", "X = 1\n")
    write(pack / "__init__.py", "from . import helper\nraise ImportError('missing dependency: foo')\n")
    result = load_pack(pack, host)
    assert not result.ok and result.error == "ImportError: missing dependency: foo"
    assert not [name for name in sys.modules if name.startswith("custom_nodes.half")]


def test_web_directory_outside_the_pack_is_not_served(tmp_path: Path) -> None:
    host = make_host(tmp_path / "home")
    pack = host.home.custom_nodes / "sneaky"
    write(pack / "__init__.py", NODE.format(name="S") + 'NODE_CLASS_MAPPINGS = {"S": S}\nWEB_DIRECTORY = "../.."\n')
    result = load_pack(pack, host)
    assert result.ok and result.web_directory is None and "sneaky" not in host.registry.web_directories


def test_pack_is_imported_with_its_host_active(tmp_path: Path) -> None:
    host = make_host(tmp_path / "home")
    write(host.home.custom_nodes / "needs_host" / "__init__.py", """
        from partyflow.nodes.host import current_host
        SEEN = str(current_host().home.root)
        NODE_CLASS_MAPPINGS = {}
    """)
    result = load_pack(host.home.custom_nodes / "needs_host", host)
    assert result.ok, result.error
    assert sys.modules[result.module_name].SEEN == str(host.home.root)


def test_two_hosts_with_same_pack_name_each_get_their_own_module(tmp_path: Path) -> None:
    hosts = [make_host(tmp_path / "a"), make_host(tmp_path / "b")]
    for host in hosts:
        pack = host.home.custom_nodes / "same"
        write(pack / "impl.py", NODE.format(name="Where"))
        write(pack / "__init__.py", """
            import folder_paths
            from server import PromptServer
            from .impl import Where
            Where.OUTPUT = folder_paths.get_output_directory()

            @PromptServer.instance.routes.get("/same/ping")
            async def ping(request):
                return None

            NODE_CLASS_MAPPINGS = {"Where": Where}
        """)
    first, second = (load_pack(host.home.custom_nodes / "same", host) for host in hosts)

    assert first.ok and second.ok, (first.error, second.error)
    assert first.module_name == "custom_nodes.same"
    assert second.module_name != first.module_name and second.module_name.startswith("custom_nodes.same")
    for host in hosts:
        entry = host.registry.entry("Where")
        assert entry.cls.OUTPUT == str(host.home.output)
        assert entry.python_module == "custom_nodes.same"
        assert [(method, path) for method, path, _ in host.routes] == [("GET", "/same/ping")]
    assert hosts[0].registry.entry("Where").cls is not hosts[1].registry.entry("Where").cls


def test_module_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    write(tmp_path / "pf_test_builtin" / "__init__.py",
          NODE.format(name="Core") + 'NODE_CLASS_MAPPINGS = {"Core": Core}\nWEB_DIRECTORY = "js"\n')
    (tmp_path / "pf_test_builtin" / "js").mkdir()
    host = make_host(tmp_path / "home")

    result = load_module_pack("pf_test_builtin", host)

    assert result.ok, result.error
    assert result.path == tmp_path / "pf_test_builtin"
    assert result.web_directory == (tmp_path / "pf_test_builtin" / "js").resolve()
    assert host.registry.entry("Core").python_module == "pf_test_builtin"


def test_module_pack_that_fails(tmp_path: Path) -> None:
    result = load_module_pack("pf_test_does_not_exist", make_host(tmp_path / "home"))
    assert not result.ok and result.path is None
    assert result.error == "ModuleNotFoundError: No module named 'pf_test_does_not_exist'"


def test_format_import_times() -> None:
    results = [
        PackLoadResult("slow", Path("/n/slow"), "custom_nodes.slow", ok=False, seconds=1.54, error="x"),
        PackLoadResult("fast", Path("/n/fast"), "custom_nodes.fast", ok=True, seconds=0.01),
        PackLoadResult("core", None, "partyflow.builtin_nodes.core", ok=True, seconds=0.2),
    ]
    assert format_import_times(results) == (
        "Import times for custom nodes:\n"
        "   0.0 seconds: /n/fast\n"
        "   0.2 seconds: partyflow.builtin_nodes.core\n"
        "   1.5 seconds (IMPORT FAILED): /n/slow"
    )


def test_load_packs_logs_import_times(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    host = make_host(tmp_path / "home")
    good_pack(host.home.custom_nodes)
    write(host.home.custom_nodes / "broken" / "__init__.py", "1/0\n")
    with caplog.at_level(logging.INFO, logger="partyflow.nodes.loader"):
        load_packs([host.home.custom_nodes], host)
    text = caplog.text
    assert "Import times for custom nodes:" in text
    assert f"seconds (IMPORT FAILED): {host.home.custom_nodes / 'broken'}" in text
    assert f"seconds: {host.home.custom_nodes / 'good_pack'}" in text
    assert "Cannot import" in text and "ZeroDivisionError" in text
