"""ComfyUI host modules: importable under ComfyUI's names, answering from the engine that runs the caller."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from partyflow.config import Home
from partyflow.nodes.comfy_compat import COMFY_MODULE_NAMES, install_compat_modules
from partyflow.nodes.host import HostContext, NodeScope, NoHostError, host_context, node_scope
from partyflow.nodes.loader import load_pack
from partyflow.nodes.registry import NodeRegistry
from partyflow.nodes.values import ExecutionBlocker

install_compat_modules()

import comfy.model_management as model_management  # noqa: E402
import comfy.utils  # noqa: E402
import comfy_execution.graph  # noqa: E402
import folder_paths  # noqa: E402
import nodes  # noqa: E402
import server  # noqa: E402


def make_host(root: Path, **kw: Any) -> HostContext:
    return HostContext(home=Home(root).ensure(), registry=NodeRegistry(), **kw)


def make_scope(reports: list[tuple[Any, ...]] | None = None, **kw: Any) -> NodeScope:
    sink = reports if reports is not None else []
    return NodeScope(prompt_id=kw.pop("prompt_id", "prompt-1"), node_id=kw.pop("node_id", "3"),
                     report_progress=lambda value, total, preview: sink.append((value, total, preview)),
                     interrupt=threading.Event(), **kw)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[HostContext]:
    host = make_host(tmp_path / "home")
    with host_context(host):
        yield host


# --- installation ----------------------------------------------------------------------------------------------

def test_every_comfy_name_is_our_module() -> None:
    for name in COMFY_MODULE_NAMES:
        assert sys.modules[name].__name__.startswith("partyflow.nodes.comfy_compat"), name
    assert comfy.utils is sys.modules["comfy.utils"]
    from comfy import model_management as via_parent
    assert via_parent is model_management


def test_modules_loaded_from_elsewhere_win(monkeypatch: pytest.MonkeyPatch) -> None:
    foreign_server = types.ModuleType("server")
    foreign_comfy = types.ModuleType("comfy")
    monkeypatch.setitem(sys.modules, "server", foreign_server)
    monkeypatch.setitem(sys.modules, "comfy", foreign_comfy)
    monkeypatch.delitem(sys.modules, "comfy.utils")
    monkeypatch.delitem(sys.modules, "comfy.model_management")

    install_compat_modules()

    assert sys.modules["server"] is foreign_server
    assert sys.modules["comfy"] is foreign_comfy
    assert "comfy.utils" not in sys.modules  # ours is never hung under somebody else's package
    assert sys.modules["folder_paths"] is folder_paths


def test_pack_using_every_host_module_at_import_time(tmp_path: Path) -> None:
    sent: list[tuple[Any, ...]] = []
    host = make_host(tmp_path / "home", emit_custom=lambda *args: sent.append(args))
    host.registry.register("Base", type("Base", (), {}), pack="core")
    pack = host.home.custom_nodes / "uses_host"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(textwrap.dedent('''
        import folder_paths
        import nodes
        import comfy.model_management
        from comfy.utils import ProgressBar
        from server import PromptServer
        from comfy_execution.graph_utils import GraphBuilder, is_link
        from comfy_execution.graph import ExecutionBlocker

        OUTPUT = folder_paths.get_output_directory()
        MODELS = folder_paths.models_dir
        folder_paths.add_model_folder_path("my_models", folder_paths.models_dir + "/my_models")
        SEEN_BASE = "Base" in nodes.NODE_CLASS_MAPPINGS
        INTERRUPTED_AT_IMPORT = comfy.model_management.processing_interrupted()

        @PromptServer.instance.routes.post("/uses_host/run")
        async def run(request):
            return None

        class Loop:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"n": ("INT", {"default": 1, "max": nodes.MAX_RESOLUTION})}}
            RETURN_TYPES = ("INT", "INT")
            FUNCTION = "go"

            def go(self, n):
                comfy.model_management.throw_exception_if_processing_interrupted()
                bar = ProgressBar(n)
                bar.update(1)
                PromptServer.instance.send_sync("uses_host.step", {"n": n}, PromptServer.instance.client_id)
                graph = GraphBuilder()
                step = graph.node("Step", value=n)
                assert is_link(step.out(0))
                return {"result": (step.out(0), ExecutionBlocker(None)), "expand": graph.finalize()}

        NODE_CLASS_MAPPINGS = {"Loop": Loop}
    '''))

    result = load_pack(pack, host)
    assert result.ok, result.traceback
    module = sys.modules[result.module_name]
    assert module.OUTPUT == str(host.home.output)
    assert module.MODELS == str(host.home.models)
    assert module.SEEN_BASE and module.INTERRUPTED_AT_IMPORT is False
    assert host.folder_names_and_paths["my_models"][0] == [str(host.home.models / "my_models")]
    assert [(m, p) for m, p, _ in host.routes] == [("POST", "/uses_host/run")]

    reports: list[tuple[Any, ...]] = []
    with host_context(host), node_scope(make_scope(reports, node_id="8", client_id="c1")):
        out = host.registry.entry("Loop").cls().go(4)
    link, blocker = out["result"]
    assert link == ["8.0.0.1", 0] and isinstance(blocker, ExecutionBlocker)
    assert out["expand"] == {"8.0.0.1": {"class_type": "Step", "inputs": {"value": 4}}}
    assert reports == [(1, 4, None)]
    assert sent == [("uses_host.step", {"n": 4}, "c1")]


# --- folder_paths -----------------------------------------------------------------------------------------------

def test_two_hosts_see_their_own_directories(tmp_path: Path) -> None:
    a, b = make_host(tmp_path / "a"), make_host(tmp_path / "b")
    with host_context(a):
        folder_paths.add_model_folder_path("llm", "/extra/llm")
        with host_context(b):
            assert folder_paths.get_output_directory() == str(tmp_path / "b" / "output")
            assert folder_paths.models_dir == str(tmp_path / "b" / "models")
            assert folder_paths.get_folder_paths("llm") == [str(tmp_path / "b" / "models" / "llm")]
        assert folder_paths.get_input_directory() == str(tmp_path / "a" / "input")
        assert folder_paths.get_temp_directory() == str(tmp_path / "a" / "temp")
        assert folder_paths.get_user_directory() == str(tmp_path / "a" / "user")
        assert folder_paths.base_path == str(tmp_path / "a")
        assert folder_paths.output_directory == str(tmp_path / "a" / "output")
        assert folder_paths.folder_names_and_paths is a.folder_names_and_paths
        assert folder_paths.get_folder_paths("llm")[-1] == "/extra/llm"


def test_two_hosts_in_concurrent_threads(tmp_path: Path) -> None:
    hosts = [make_host(tmp_path / str(i)) for i in range(2)]
    seen: dict[int, str] = {}
    barrier = threading.Barrier(2)

    def work(i: int) -> None:
        with host_context(hosts[i]):
            barrier.wait(5)
            seen[i] = folder_paths.get_output_directory()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert seen == {i: str(hosts[i].home.output) for i in range(2)}


def test_outside_an_engine_folder_paths_says_so() -> None:
    with pytest.raises(NoHostError):
        folder_paths.get_output_directory()
    with pytest.raises(AttributeError):
        folder_paths.no_such_thing  # noqa: B018


def test_add_model_folder_path_default_goes_first(host: HostContext) -> None:
    folder_paths.add_model_folder_path("llm", "/first", is_default=True)
    folder_paths.add_model_folder_path("new_kind", "/x")
    assert folder_paths.get_folder_paths("llm")[0] == "/first"
    assert folder_paths.get_folder_paths("new_kind") == ["/x"]


def test_filename_list_and_full_path(host: HostContext) -> None:
    llm = host.home.models / "llm"
    for name in ("b.gguf", "sub/a.safetensors", ".git/objects/x.gguf"):
        (llm / name).parent.mkdir(parents=True, exist_ok=True)
        (llm / name).write_text("w")
    (host.home.root / "secret.txt").write_text("s")

    assert folder_paths.get_filename_list("llm") == ["b.gguf", "sub/a.safetensors"]
    host.folder_names_and_paths["llm"] = ([str(llm)], {".gguf"})
    assert folder_paths.get_filename_list("llm") == ["b.gguf"]
    assert folder_paths.get_full_path("llm", "sub/a.safetensors") == str(llm / "sub" / "a.safetensors")
    assert folder_paths.get_full_path("llm", "missing.gguf") is None
    assert folder_paths.get_full_path("nope", "b.gguf") is None
    with pytest.raises(FileNotFoundError):
        folder_paths.get_full_path_or_raise("llm", "missing.gguf")


def test_full_path_refuses_escapes(host: HostContext) -> None:
    (host.home.root / "secret.txt").write_text("s")
    assert os.path.isfile(host.home.models / "llm" / "../../secret.txt")  # it exists, yet:
    assert folder_paths.get_full_path("llm", "../../secret.txt") is None
    assert folder_paths.get_full_path("llm", str(host.home.root / "secret.txt")) is None
    with pytest.raises(FileNotFoundError):
        folder_paths.get_full_path_or_raise("llm", "../../secret.txt")


def test_filter_files_extensions() -> None:
    assert folder_paths.filter_files_extensions(["b.PT", "a.txt", "c.pt"], {".pt"}) == ["b.PT", "c.pt"]
    assert folder_paths.filter_files_extensions(["b", "a"], []) == ["a", "b"]
    assert ".safetensors" in folder_paths.supported_pt_extensions


def test_annotated_file_paths(host: HostContext) -> None:
    assert folder_paths.annotated_filepath("cat.png [output]") == ("cat.png", str(host.home.output))
    assert folder_paths.annotated_filepath("cat.png [temp]") == ("cat.png", str(host.home.temp))
    assert folder_paths.annotated_filepath("cat.png") == ("cat.png", None)
    assert folder_paths.get_annotated_filepath("cat.png") == str(host.home.input / "cat.png")
    assert folder_paths.get_annotated_filepath("d/cat.png [output]") == str(host.home.output / "d" / "cat.png")
    (host.home.input / "dog.png").write_text("x")
    assert folder_paths.exists_annotated_filepath("dog.png [input]")
    assert not folder_paths.exists_annotated_filepath("dog.png [output]")


def test_annotated_file_paths_refuse_escapes(host: HostContext) -> None:
    (host.home.root / "secret.txt").write_text("s")
    with pytest.raises(PermissionError):
        folder_paths.get_annotated_filepath("../secret.txt [input]")
    with pytest.raises(PermissionError):
        folder_paths.get_annotated_filepath("/etc/passwd")
    assert not folder_paths.exists_annotated_filepath("../secret.txt")


def test_save_image_path_counts_and_creates_subfolders(host: HostContext) -> None:
    output = folder_paths.get_output_directory()
    assert folder_paths.get_save_image_path("ComfyUI", output) == (output, "ComfyUI", 1, "", "ComfyUI")
    for name in ("ComfyUI_00001_.png", "ComfyUI_00007_.png", "ComfyUI_extra_.png", "Other_00099_.png"):
        (host.home.output / name).write_text("x")
    assert folder_paths.get_save_image_path("ComfyUI", output)[2] == 8

    folder, filename, counter, subfolder, prefix = folder_paths.get_save_image_path("run/img_%width%", output, 64)
    assert (folder, filename, counter, subfolder, prefix) == (
        str(host.home.output / "run"), "img_64", 1, "run", "run/img_64")
    assert os.path.isdir(folder)


def test_save_image_path_refuses_escapes(host: HostContext) -> None:
    output = folder_paths.get_output_directory()
    for prefix in ("../evil", "a/../../evil", "/tmp/evil", ".."):
        with pytest.raises(PermissionError):
            folder_paths.get_save_image_path(prefix, output)
    assert not (host.home.root / "evil").exists()


# --- server -------------------------------------------------------------------------------------------------------

def test_prompt_server_instance_answers_from_host_and_scope(tmp_path: Path) -> None:
    sent: list[tuple[Any, ...]] = []
    host = make_host(tmp_path / "home", emit_custom=lambda *args: sent.append(args), client_id="default")
    instance = server.PromptServer.instance
    assert instance.client_id is None and instance.last_node_id is None  # no engine: safe defaults
    with host_context(host):
        assert instance.routes is host.routes
        assert instance.client_id == "default"
        instance.send_sync("my.event", {"a": 1})
        with node_scope(make_scope(node_id="4", prompt_id="p9", client_id="c2")):
            assert (instance.client_id, instance.last_node_id, instance.last_prompt_id) == ("c2", "4", "p9")
            instance.send_sync("my.event", {"a": 2}, "c2")
        handler = lambda prompt: prompt  # noqa: E731
        instance.add_on_prompt_handler(handler)
    assert sent == [("my.event", {"a": 1}, None), ("my.event", {"a": 2}, "c2")]
    assert host.prompt_handlers == [handler]


def test_prompt_server_loop(tmp_path: Path) -> None:
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        with host_context(make_host(tmp_path / "home", loop=loop)):
            assert server.PromptServer.instance.loop is loop
        with host_context(make_host(tmp_path / "other")):
            assert server.PromptServer.instance.loop is None
    finally:
        loop.close()


# --- comfy.utils ----------------------------------------------------------------------------------------------------

def test_progress_bar_reports_into_the_node_scope() -> None:
    reports: list[tuple[Any, ...]] = []
    with node_scope(make_scope(reports)):
        bar = comfy.utils.ProgressBar(3)
        bar.update(1)
        bar.update(1)
        bar.update_absolute(5, total=10, preview=("JPEG", "img", 512))
        bar.update_absolute(50)
    assert reports == [(1, 3, None), (2, 3, None), (5, 10, ("JPEG", "img", 512)), (10, 10, None)]


def test_progress_bar_from_a_worker_thread_reports_to_its_creators_scope() -> None:
    reports: list[tuple[Any, ...]] = []
    with node_scope(make_scope(reports)):
        bar = comfy.utils.ProgressBar(2)
    worker = threading.Thread(target=bar.update, args=(2,))  # a fresh thread: no context of its own
    worker.start()
    worker.join(5)
    assert reports == [(2, 2, None)]


def test_progress_bar_outside_a_node_call_only_counts() -> None:
    bar = comfy.utils.ProgressBar(5)
    bar.update(2)
    assert (bar.current, bar.total) == (2, 5)
    assert comfy.utils.PROGRESS_BAR_ENABLED is True


def test_diffusion_helpers_import_and_fail_clearly_when_called() -> None:
    from partyflow.nodes.comfy_compat._runtime import DiffusionRuntimeError

    with pytest.raises(DiffusionRuntimeError, match="comfy.utils.pack_latents needs ComfyUI's diffusion runtime"):
        comfy.utils.pack_latents(None)


def test_host_modules_do_not_import_torch() -> None:
    code = ("import sys; from partyflow.nodes.comfy_compat import install_compat_modules; "
            "install_compat_modules(); import comfy.model_management as m; m.get_torch_device(); "
            "assert 'torch' not in sys.modules")
    import subprocess

    src = str(Path(__file__).resolve().parents[2] / "src")
    completed = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": src},
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr


# --- comfy.model_management -------------------------------------------------------------------------------------------

def test_interrupt_raises_inside_the_interrupted_node_call_only() -> None:
    interrupted, other = make_scope(), make_scope()
    with node_scope(interrupted):
        model_management.throw_exception_if_processing_interrupted()  # not yet
        model_management.interrupt_current_processing()
        assert model_management.processing_interrupted()
        with pytest.raises(model_management.InterruptProcessingException):
            model_management.throw_exception_if_processing_interrupted()
        with pytest.raises(model_management.InterruptProcessingException):
            nodes.before_node_execution()
    with node_scope(other):
        assert not model_management.processing_interrupted()
    assert interrupted.interrupt.is_set()
    with node_scope(interrupted):
        model_management.interrupt_current_processing(False)
    assert not interrupted.interrupt.is_set()


def test_interrupt_set_by_the_engine_is_seen() -> None:
    scope = make_scope()
    scope.interrupt.set()
    with node_scope(scope), pytest.raises(model_management.InterruptProcessingException):
        model_management.throw_exception_if_processing_interrupted()
    assert not model_management.processing_interrupted()  # outside any node call
    model_management.interrupt_current_processing()  # and a no-op there


def test_device_helpers_are_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert model_management.get_torch_device() == "cpu"
    assert model_management.intermediate_device() == "cpu"
    assert model_management.cpu_state is model_management.CPUState.CPU
    assert model_management.total_vram > 0 and model_management.get_total_memory() > 0
    assert model_management.get_free_memory(torch_free_too=True)[0] >= 0
    assert model_management.soft_empty_cache() is None and model_management.unload_all_models() is None


# --- comfy_execution and nodes -------------------------------------------------------------------------------------

def test_comfy_execution_exports() -> None:
    from comfy_execution.graph_utils import ExecutionBlocker as from_utils
    from comfy_execution.graph_utils import GraphBuilder

    from partyflow.nodes.graph_builder import GraphBuilder as ours

    assert GraphBuilder is ours
    assert from_utils is ExecutionBlocker and comfy_execution.graph.ExecutionBlocker is ExecutionBlocker


def test_dynamic_prompt_is_looked_up_lazily() -> None:
    if importlib.util.find_spec("partyflow.graph.dynamic") is None:
        with pytest.raises(AttributeError, match="not available"):
            comfy_execution.graph.DynamicPrompt  # noqa: B018
    else:
        from partyflow.graph.dynamic import DynamicPrompt

        assert comfy_execution.graph.DynamicPrompt is DynamicPrompt


def test_nodes_mappings_are_live_views_of_the_running_engine(tmp_path: Path) -> None:
    a, b = make_host(tmp_path / "a"), make_host(tmp_path / "b")
    mappings = nodes.NODE_CLASS_MAPPINGS
    cls = type("Later", (), {})
    with host_context(a):
        assert "Later" not in mappings
        a.registry.register("Later", cls, display_name="Later Node", pack="p")
        assert mappings["Later"] is cls
        assert dict(nodes.NODE_DISPLAY_NAME_MAPPINGS) == {"Later": "Later Node"}
        from nodes import Later  # type: ignore[attr-defined]
        assert Later is cls
    with host_context(b):
        assert "Later" not in mappings and len(mappings) == 0
        with pytest.raises(ImportError):
            from nodes import Later  # type: ignore[attr-defined]  # noqa: F401,F811
    assert nodes.MAX_RESOLUTION == 16384
    with pytest.raises(AttributeError):
        nodes.Later  # noqa: B018  (outside an engine)
