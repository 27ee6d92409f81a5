"""Real-pack compatibility: a V3-API pack and a pack importing every host module load, list and run."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from partyflow.engine.engine import Engine, PromptValidationError

DATA = Path(__file__).resolve().parents[1] / "data" / "packs"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    home = tmp_path_factory.mktemp("home")
    for pack in ("v3_sample", "host_modules_sample"):
        shutil.copytree(DATA / pack, home / "custom_nodes" / pack)
    engine = Engine(home, builtin_packs=("comfy",))
    yield engine
    engine.close()


def test_both_packs_load_every_class(engine: Engine) -> None:
    loaded = {r.name: r for r in engine.pack_results}
    assert loaded["v3_sample"].ok, loaded["v3_sample"].error
    assert loaded["v3_sample"].node_types == ("V3Repeat", "V3Show", "V3Gate")
    assert loaded["host_modules_sample"].ok, loaded["host_modules_sample"].error
    assert set(loaded["host_modules_sample"].node_types) == {"HostSamplerPicker", "HostFacts", "HostNeedsDiffusion"}


def test_v3_node_in_object_info(engine: Engine) -> None:
    info = engine.object_info("V3Repeat")["V3Repeat"]
    assert info["display_name"] == "Repeat text (V3)"
    assert info["category"] == "v3 sample" and info["description"] == "Repeats a text a number of times."
    assert info["python_module"] == "custom_nodes.v3_sample"
    assert info["input"]["required"]["times"] == ["INT", {"tooltip": "how often", "min": 1, "max": 5, "default": 2}]
    assert info["input"]["required"]["separator"][0] == "COMBO"
    assert info["input"]["required"]["separator"][1]["options"] == ["space", "comma"]
    assert info["input"]["optional"] == {"shout": ["BOOLEAN", {"default": False}]}
    assert info["input"]["hidden"] == {"unique_id": "UNIQUE_ID"}
    assert info["input_order"] == {"required": ["text", "times", "separator"], "optional": ["shout"]}
    assert info["output"] == ["STRING", "GREETING"] and info["output_name"] == ["repeated", "GREETING"]
    show = engine.object_info("V3Show")["V3Show"]
    assert show["output_node"] is True and show["input"]["hidden"] == {"prompt": "PROMPT",
                                                                       "extra_pnginfo": "EXTRA_PNGINFO"}


def test_v3_nodes_run_sync_and_async_with_hidden_values(engine: Engine) -> None:
    prompt = {"7": {"class_type": "V3Repeat", "inputs": {"text": "ab", "times": 3, "separator": "comma",
                                                         "shout": True}},
              "8": {"class_type": "V3Show", "inputs": {"greeting": ["7", 1]}}}
    result = engine.run(prompt)
    assert result.ok, result.error
    assert result.output("7") == "AB,AB,AB"
    assert result.outputs["8"]["text"] == [("7: AB,AB,AB",)]


def test_v3_validate_inputs_is_used(engine: Engine) -> None:
    prompt = {"1": {"class_type": "V3Repeat", "inputs": {"text": "x", "times": 4, "separator": "space"}},
              "2": {"class_type": "V3Show", "inputs": {"greeting": ["1", 1]}}}
    with pytest.raises(PromptValidationError, match="four is not allowed"):
        engine.run(prompt)


def test_v3_block_execution_stops_downstream(engine: Engine) -> None:
    prompt = {"1": {"class_type": "V3Repeat", "inputs": {"text": "x", "times": 1, "separator": "space"}},
              "2": {"class_type": "V3Gate", "inputs": {"text": ["1", 0], "open": False}},
              "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}}
    result = engine.run(prompt)
    assert not result.ok and "the gate is closed" in str(result.error)


def test_host_module_pack_lists_comfy_sampler_names(engine: Engine) -> None:
    info = engine.object_info("HostSamplerPicker")["HostSamplerPicker"]
    samplers = info["input"]["required"]["sampler"][0]
    assert samplers[:3] == ["euler", "euler_cfg_pp", "euler_ancestral"] and "uni_pc" in samplers
    assert "karras" in info["input"]["required"]["scheduler"][0]


def test_host_module_pack_runs_with_comfy_defaults(engine: Engine) -> None:
    prompt = {"1": {"class_type": "HostFacts", "inputs": {"steps": 3}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    result = engine.run(prompt)
    assert result.ok, result.error
    facts = dict(item.split("=", 1) for item in result.output("1").split(";"))
    assert facts == {"metadata": "on", "preview": "none", "device": "cpu", "cond": "['a', 'b']",
                     "renamed": "['diffusion.x']", "hash": "sha256", "result": "SUCCESS", "folder": "True"}


def test_diffusion_nodes_fail_clearly_only_when_run(engine: Engine) -> None:
    prompt = {"1": {"class_type": "HostNeedsDiffusion", "inputs": {"name": "m.safetensors"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    result = engine.run(prompt)
    assert not result.ok
    assert "comfy.sd.load_checkpoint_guess_config needs ComfyUI's diffusion runtime" in str(result.error)


def test_nodes_module_exports_core_class_names(engine: Engine) -> None:
    from partyflow.nodes.comfy_compat import install_compat_modules
    from partyflow.nodes.comfy_compat._runtime import DiffusionRuntimeError

    install_compat_modules()
    import nodes

    assert nodes.PreviewAny.__name__ == "PreviewAny"
    for name in ("KSampler", "CLIPTextEncode", "LoraLoader", "CheckpointLoaderSimple", "EmptyLatentImage",
                 "ControlNetApplyAdvanced", "ConditioningCombine"):
        cls = getattr(nodes, name)
        assert cls.RETURN_TYPES and cls.INPUT_TYPES() == {"required": {}}
        with pytest.raises(DiffusionRuntimeError, match=f"nodes.{name} needs ComfyUI's diffusion runtime"):
            getattr(cls(), cls.FUNCTION)()
    with pytest.raises(DiffusionRuntimeError):
        nodes.common_ksampler(None)


def test_prompt_server_supports_and_app_routes(engine: Engine) -> None:
    from partyflow.nodes.host import host_context

    with host_context(engine.host):
        import server

        assert "custom_nodes_from_web" in server.PromptServer.instance.supports

        async def hello(request: object) -> None:
            return None

        server.PromptServer.instance.app.router.add_get("/host-sample/hello", hello)
        assert ("GET", "/host-sample/hello", hello) in list(engine.host.routes)


def test_core_image_nodes_use_comfy_tensors_and_save_viewable_files(engine: Engine) -> None:
    torch = pytest.importorskip("torch")  # the `local` extra; the dev extra installs it
    from PIL import Image

    Image.new("RGBA", (8, 6), (255, 0, 0, 128)).save(engine.home.input / "red.png")
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "red.png"}},
              "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
              "3": {"class_type": "ImageScale", "inputs": {"image": ["2", 0], "upscale_method": "bilinear",
                                                           "width": 4, "height": 0, "crop": "disabled"}},
              "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "sub/inv"}},
              "5": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
              "6": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 3}},
              "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}}
    result = engine.run(prompt)
    assert result.ok, result.error
    image, mask = result.output("1", 0), result.output("1", 1)
    assert tuple(image.shape) == (1, 6, 8, 3) and image.dtype == torch.float32
    assert float(image[0, 0, 0, 0]) == 1.0 and float(image[0, 0, 0, 1]) == 0.0
    assert tuple(mask.shape) == (1, 6, 8) and abs(float(mask[0, 0, 0]) - (1 - 128 / 255)) < 1e-6
    assert tuple(result.output("3").shape) == (1, 3, 4, 3)
    assert tuple(result.output("6").shape) == (3, 6, 8, 3)
    saved = result.outputs["4"]["images"][0]
    assert saved == {"filename": "inv_00001_.png", "subfolder": "sub", "type": "output"}
    with Image.open(engine.home.output / "sub" / "inv_00001_.png") as written:
        assert written.size == (4, 3) and written.getpixel((0, 0))[:3] == (0, 255, 255)
        assert "prompt" in written.info
    preview = result.outputs["5"]["images"][0]
    assert preview["type"] == "temp" and (engine.home.temp / preview["subfolder"] / preview["filename"]).is_file()


def test_host_modules_locate_themselves_in_the_home_not_in_partyflows_package(engine: Engine) -> None:
    import os

    import partyflow
    from partyflow.nodes.host import host_context

    package = Path(partyflow.__file__).resolve().parent
    with host_context(engine.host):
        import execution
        import folder_paths
        import nodes
        import server

        for module in (folder_paths, server, nodes, execution):
            root = Path(os.path.dirname(module.__file__))
            assert root == engine.home.root, module
            assert package not in root.resolve().parents


def test_core_audio_nodes_round_trip_a_wav_file(engine: Engine) -> None:
    pytest.importorskip("torch")
    import math
    import struct
    import wave

    with wave.open(str(engine.home.input / "tone.wav"), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(b"".join(struct.pack("<h", int(16000 * math.sin(i / 10))) for i in range(800)))
    prompt = {"1": {"class_type": "LoadAudio", "inputs": {"audio": "tone.wav"}},
              "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/tone"}},
              "3": {"class_type": "PreviewAudio", "inputs": {"audio": ["1", 0]}}}
    result = engine.run(prompt)
    assert result.ok, result.error
    audio = result.output("1")
    assert audio["sample_rate"] == 8000 and tuple(audio["waveform"].shape) == (1, 1, 800)
    assert abs(float(audio["waveform"][0, 0, 10]) - 16000 * math.sin(1) / 32768) < 1e-4
    saved = result.outputs["2"]["audio"][0]
    assert saved["subfolder"] == "audio" and saved["type"] == "output"
    path = engine.home.output / "audio" / saved["filename"]
    assert path.is_file() and path.suffix in (".flac", ".wav")
    assert result.outputs["3"]["audio"][0]["type"] == "temp"


def test_v3_types_of_newer_comfyui_versions_resolve_by_name() -> None:
    from partyflow.nodes.comfy_compat import install_compat_modules

    install_compat_modules()
    from comfy_api.latest import Types, io

    assert io.BoundingBox.io_type == "BOUNDING_BOX" and io.BoundingBox is io.BoundingBox
    declared = io.BoundingBox.Input("box", default={"x": 0}, optional=True)
    assert declared.get_io_type() == "BOUNDING_BOX" and declared.options()["default"] == {"x": 0}
    assert Types.VideoCodec.as_input()[0] == "auto" and Types.VideoContainer.get_extension("auto") == "mp4"


def test_nodes_mask_composite_is_real_and_its_node_classes_are_placeholders() -> None:
    torch = pytest.importorskip("torch")
    from partyflow.nodes.comfy_compat import install_compat_modules
    from partyflow.nodes.comfy_compat._runtime import DiffusionRuntimeError

    install_compat_modules()
    from comfy_extras.nodes_mask import MaskToImage, composite

    destination, source = torch.zeros(1, 3, 6, 6), torch.ones(1, 3, 2, 2)
    pasted = composite(destination.clone(), source, 4, 4, multiplier=1)
    assert pasted[0, 0, 4:, 4:].eq(1).all() and pasted[0, 0, :4].eq(0).all()
    clipped = composite(destination.clone(), source, -1, -1, multiplier=1)
    assert clipped[0, 0, 0, 0] == 1 and clipped[0, 0].sum() == 1
    masked = composite(destination.clone(), source, 0, 0, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), 1)
    assert masked[0, 0, :2, :2].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(DiffusionRuntimeError):
        MaskToImage()


def test_a_v3_pack_with_a_broken_schema_fails_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pack = home / "custom_nodes" / "v3_broken"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(
        "from comfy_api.latest import ComfyExtension, io\n"
        "class Twice(io.ComfyNode):\n"
        "    @classmethod\n"
        "    def define_schema(cls):\n"
        "        return io.Schema(node_id='Twice', inputs=[io.Int.Input('a'), io.Int.Input('a')], outputs=[])\n"
        "    @classmethod\n"
        "    def execute(cls, a):\n"
        "        return io.NodeOutput()\n"
        "class Ext(ComfyExtension):\n"
        "    async def get_node_list(self):\n"
        "        return [Twice]\n"
        "def comfy_entrypoint():\n"
        "    return Ext()\n")
    shutil.copytree(DATA / "v3_sample", home / "custom_nodes" / "v3_sample")
    engine = Engine(home, builtin_packs=())
    try:
        results = {r.name: r for r in engine.pack_results}
        assert not results["v3_broken"].ok and "input ids must be unique" in str(results["v3_broken"].error)
        assert results["v3_sample"].ok and "V3Repeat" in engine.registry
        import sys

        assert not any(name.startswith("custom_nodes.v3_broken") for name in sys.modules)
    finally:
        engine.close()
