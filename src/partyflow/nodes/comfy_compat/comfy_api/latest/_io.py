"""ComfyUI's V3 node API (`comfy_api.latest.io`): typed schemas that partyflow reads as V1 node classes.

A V3 node subclasses `ComfyNode`, describes itself in `define_schema()` (a `Schema` of typed inputs, outputs
and hidden values) and computes in a classmethod `execute` (sync or async) that returns a `NodeOutput`.
partyflow's node protocol speaks the V1 interface, so `ComfyNode` answers it: `INPUT_TYPES`, `RETURN_TYPES`,
`FUNCTION` and the flags are derived from the schema on demand, and the V1 function turns a `NodeOutput`
into the `{"result", "ui", "expand"}` dict the executor already understands. Hidden values reach `execute`
through `cls.hidden` on a per-call subclass, so concurrent calls never see each other's values.
"""

from __future__ import annotations

import abc
import copy
import enum
import functools
import inspect
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from partyflow.nodes.values import ExecutionBlocker

__all__ = [
    "FolderType", "UploadType", "RemoteOptions", "NumberDisplay", "comfytype", "Custom", "Input", "WidgetInput",
    "Output", "ComfyTypeI", "ComfyTypeIO", "Boolean", "Int", "Float", "String", "Combo", "MultiCombo", "Image",
    "WanCameraEmbedding", "Webcam", "Mask", "Latent", "Conditioning", "Sampler", "Sigmas", "Noise", "Guider",
    "Clip", "ControlNet", "Vae", "Model", "ClipVision", "ClipVisionOutput", "AudioEncoder", "AudioEncoderOutput",
    "StyleModel", "Gligen", "UpscaleModel", "LatentUpscaleModel", "Audio", "Video", "SVG", "LoraModel", "LossMap",
    "Voxel", "Mesh", "Hooks", "HookKeyframes", "TimestepsRange", "LatentOperation", "FlowControl", "Accumulation",
    "Load3DCamera", "Load3D", "Load3DAnimation", "Photomaker", "Point", "FaceAnalysis", "BBOX", "SEGS", "AnyType",
    "MultiType", "Tracks", "MatchType", "DynamicCombo", "Autogrow", "DynamicSlot", "HiddenHolder", "Hidden",
    "Schema", "ComfyNode", "NodeOutput", "add_to_dict_v1", "add_to_dict_v3",
]


def _pruned(values: Mapping[str, Any]) -> dict[str, Any]:
    """Drop options left at None, as the schema serialisation does."""
    return {key: value for key, value in values.items() if value is not None}


class FolderType(enum.StrEnum):
    input = "input"
    output = "output"
    temp = "temp"


class UploadType(enum.StrEnum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class NumberDisplay(enum.StrEnum):
    number = "number"
    slider = "slider"


class RemoteOptions:
    """A combo whose options the frontend fetches from a route."""

    def __init__(self, route: str, refresh_button: bool, control_after_refresh: str = "first",
                 timeout: int | None = None, max_retries: int | None = None, refresh: int | None = None) -> None:
        self.route, self.refresh_button, self.control_after_refresh = route, refresh_button, control_after_refresh
        self.timeout, self.max_retries, self.refresh = timeout, max_retries, refresh

    def as_dict(self) -> dict[str, Any]:
        return _pruned({"route": self.route, "refresh_button": self.refresh_button,
                        "control_after_refresh": self.control_after_refresh, "timeout": self.timeout,
                        "max_retries": self.max_retries, "refresh": self.refresh})


# --- inputs and outputs ---------------------------------------------------------------------------------------

class _ComfyType:
    """A socket type: its name (`io_type`) and its nested `Input` / `Output` declarations."""

    Type: Any = Any
    io_type: str = ""


class _IO:
    Parent: type[_ComfyType] = _ComfyType

    @property
    def io_type(self) -> str:
        return self.Parent.io_type

    def validate(self) -> None:
        """Declarations are checked when the schema is read."""


class Input(_IO):
    """An input socket (no widget)."""

    def __init__(self, id: str, display_name: str | None = None, optional: bool = False, tooltip: str | None = None,
                 lazy: bool | None = None, extra_dict: Mapping[str, Any] | None = None, raw_link: bool | None = None,
                 **extra: Any) -> None:
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.raw_link = raw_link
        self.extra_dict = {**(extra_dict or {}), **_pruned(extra)}

    def options(self) -> dict[str, Any]:
        """The V1 options dict (`{"tooltip": ..., "lazy": ...}`)."""
        return _pruned({"display_name": self.display_name, "tooltip": self.tooltip, "lazy": self.lazy,
                        "rawLink": self.raw_link}) | _pruned(self.extra_dict)

    def as_dict(self) -> dict[str, Any]:
        return self.options() | ({"optional": True} if self.optional else {})

    def get_io_type(self) -> str:
        return self.io_type

    def get_all(self) -> list[Input]:
        return [self]


class WidgetInput(Input):
    """An input with an editor widget (and so a value in saved workflows unless `force_input`)."""

    def __init__(self, id: str, display_name: str | None = None, optional: bool = False, tooltip: str | None = None,
                 lazy: bool | None = None, default: Any = None, socketless: bool | None = None,
                 widget_type: str | None = None, force_input: bool | None = None,
                 extra_dict: Mapping[str, Any] | None = None, raw_link: bool | None = None, **extra: Any) -> None:
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link, **extra)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def options(self) -> dict[str, Any]:
        return super().options() | _pruned({"default": self.default, "socketless": self.socketless,
                                            "widgetType": self.widget_type, "forceInput": self.force_input})

    def get_io_type(self) -> str:
        return self.widget_type or super().get_io_type()


class Output(_IO):
    def __init__(self, id: str | None = None, display_name: str | None = None, tooltip: str | None = None,
                 is_output_list: bool = False, **_: Any) -> None:
        self.id = id
        self.display_name = display_name
        self.tooltip = tooltip
        self.is_output_list = is_output_list

    def as_dict(self) -> dict[str, Any]:
        return _pruned({"display_name": self.display_name, "tooltip": self.tooltip,
                        "is_output_list": self.is_output_list})

    def get_io_type(self) -> str:
        return self.io_type


class ComfyTypeI(_ComfyType):
    """A type that only appears as an input."""

    Input: type[Input] = Input


class ComfyTypeIO(ComfyTypeI):
    """A type with both an input and an output declaration."""

    Output: type[Output] = Output


T = TypeVar("T", bound=type)


def comfytype(io_type: str, **_: Any) -> Any:
    """Bind `io_type` to a type class and give it its own `Input`/`Output` declarations."""

    def decorate(cls: T) -> T:
        if not issubclass(cls, _ComfyType):
            cls = type(cls.__name__, (cls, ComfyTypeIO), {"__module__": cls.__module__, "__doc__": cls.__doc__})
        cls.io_type = io_type  # type: ignore[attr-defined]
        for kind in ("Input", "Output"):
            declared = getattr(cls, kind, None)
            if isinstance(declared, type):
                setattr(cls, kind, type(kind, (declared,), {"Parent": cls, "__qualname__": f"{cls.__name__}.{kind}"}))
        return cls

    return decorate


def Custom(io_type: str) -> type[ComfyTypeIO]:  # noqa: N802 - ComfyUI's name
    """A socket type of a pack's own (`io.Custom("LLM_MODEL")`)."""

    @comfytype(io_type=io_type)
    class CustomComfyType(ComfyTypeIO):
        pass

    return CustomComfyType


@comfytype(io_type="BOOLEAN")
class Boolean(ComfyTypeIO):
    Type = bool

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: bool | None = None,
                     label_on: str | None = None, label_off: str | None = None, socketless: bool | None = None,
                     force_input: bool | None = None, extra_dict: Mapping[str, Any] | None = None,
                     raw_link: bool | None = None, **extra: Any) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link, label_on=label_on, label_off=label_off, **extra)


@comfytype(io_type="INT")
class Int(ComfyTypeIO):
    Type = int

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: int | None = None,
                     min: int | None = None, max: int | None = None, step: int | None = None,
                     control_after_generate: bool | None = None, display_mode: NumberDisplay | None = None,
                     socketless: bool | None = None, force_input: bool | None = None,
                     extra_dict: Mapping[str, Any] | None = None, raw_link: bool | None = None, **extra: Any) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link, min=min, max=max, step=step,
                             control_after_generate=control_after_generate,
                             display=display_mode.value if isinstance(display_mode, enum.Enum) else display_mode,
                             **extra)


@comfytype(io_type="FLOAT")
class Float(ComfyTypeIO):
    Type = float

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: float | None = None,
                     min: float | None = None, max: float | None = None, step: float | None = None,
                     round: float | None = None, display_mode: NumberDisplay | None = None,
                     socketless: bool | None = None, force_input: bool | None = None,
                     extra_dict: Mapping[str, Any] | None = None, raw_link: bool | None = None, **extra: Any) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link, min=min, max=max, step=step, round=round,
                             display=display_mode.value if isinstance(display_mode, enum.Enum) else display_mode,
                             **extra)


@comfytype(io_type="STRING")
class String(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, multiline: bool = False,
                     placeholder: str | None = None, default: str | None = None,
                     dynamic_prompts: bool | None = None, socketless: bool | None = None,
                     force_input: bool | None = None, extra_dict: Mapping[str, Any] | None = None,
                     raw_link: bool | None = None, **extra: Any) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link, multiline=multiline or None, placeholder=placeholder,
                             dynamicPrompts=dynamic_prompts, **extra)


def _choices(options: Any) -> list[Any]:
    if isinstance(options, type) and issubclass(options, enum.Enum):
        return [member.value for member in options]
    return list(options or [])


@comfytype(io_type="COMBO")
class Combo(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, options: Any = None, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: Any = None,
                     control_after_generate: bool | None = None, upload: UploadType | None = None,
                     image_folder: FolderType | None = None, remote: RemoteOptions | None = None,
                     socketless: bool | None = None, extra_dict: Mapping[str, Any] | None = None,
                     raw_link: bool | None = None, **extra: Any) -> None:
            default = default.value if isinstance(default, enum.Enum) else default
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, None, extra_dict,
                             raw_link, **extra)
            self.choices = _choices(options)
            self.multiselect = False
            self.control_after_generate = control_after_generate
            self.upload = upload
            self.image_folder = image_folder
            self.remote = remote

        def options(self) -> dict[str, Any]:
            upload = {self.upload.value: True} if isinstance(self.upload, enum.Enum) else {}
            return super().options() | _pruned({
                "options": self.choices, "control_after_generate": self.control_after_generate,
                "image_folder": self.image_folder.value if isinstance(self.image_folder, enum.Enum) else None,
                "remote": self.remote.as_dict() if self.remote is not None else None,
                "multiselect": self.multiselect or None}) | upload

    class Output(Output):
        def __init__(self, id: str | None = None, display_name: str | None = None, options: list[Any] | None = None,
                     tooltip: str | None = None, is_output_list: bool = False, **extra: Any) -> None:
            super().__init__(id, display_name, tooltip, is_output_list)
            self.choices = list(options or [])


@comfytype(io_type="COMBO")
class MultiCombo(ComfyTypeI):
    Type = list

    class Input(Combo.Input):
        def __init__(self, id: str, options: Any, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: list[str] | None = None,
                     placeholder: str | None = None, chip: bool | None = None,
                     control_after_generate: bool | None = None, socketless: bool | None = None,
                     extra_dict: Mapping[str, Any] | None = None, raw_link: bool | None = None, **extra: Any) -> None:
            super().__init__(id, options, display_name, optional, tooltip, lazy, default, control_after_generate,
                             socketless=socketless, extra_dict=extra_dict, raw_link=raw_link, **extra)
            self.multiselect = True
            self.extra_dict.update(_pruned({"multi_select": {"placeholder": placeholder, "chip": chip}}))


def _simple(io_type: str, name: str) -> type[ComfyTypeIO]:
    return comfytype(io_type=io_type)(type(name, (ComfyTypeIO,), {"__module__": __name__}))


Image = _simple("IMAGE", "Image")
Mask = _simple("MASK", "Mask")
Latent = _simple("LATENT", "Latent")
Conditioning = _simple("CONDITIONING", "Conditioning")
Sampler = _simple("SAMPLER", "Sampler")
Sigmas = _simple("SIGMAS", "Sigmas")
Noise = _simple("NOISE", "Noise")
Guider = _simple("GUIDER", "Guider")
Clip = _simple("CLIP", "Clip")
ControlNet = _simple("CONTROL_NET", "ControlNet")
Vae = _simple("VAE", "Vae")
Model = _simple("MODEL", "Model")
ClipVision = _simple("CLIP_VISION", "ClipVision")
ClipVisionOutput = _simple("CLIP_VISION_OUTPUT", "ClipVisionOutput")
AudioEncoder = _simple("AUDIO_ENCODER", "AudioEncoder")
AudioEncoderOutput = _simple("AUDIO_ENCODER_OUTPUT", "AudioEncoderOutput")
StyleModel = _simple("STYLE_MODEL", "StyleModel")
Gligen = _simple("GLIGEN", "Gligen")
UpscaleModel = _simple("UPSCALE_MODEL", "UpscaleModel")
LatentUpscaleModel = _simple("LATENT_UPSCALE_MODEL", "LatentUpscaleModel")
Audio = _simple("AUDIO", "Audio")
Video = _simple("VIDEO", "Video")
SVG = _simple("SVG", "SVG")
LoraModel = _simple("LORA_MODEL", "LoraModel")
LossMap = _simple("LOSS_MAP", "LossMap")
Voxel = _simple("VOXEL", "Voxel")
Mesh = _simple("MESH", "Mesh")
Hooks = _simple("HOOKS", "Hooks")
HookKeyframes = _simple("HOOK_KEYFRAMES", "HookKeyframes")
TimestepsRange = _simple("TIMESTEPS_RANGE", "TimestepsRange")
LatentOperation = _simple("LATENT_OPERATION", "LatentOperation")
FlowControl = _simple("FLOW_CONTROL", "FlowControl")
Accumulation = _simple("ACCUMULATION", "Accumulation")
Load3DCamera = _simple("LOAD3D_CAMERA", "Load3DCamera")
Load3D = _simple("LOAD_3D", "Load3D")
Load3DAnimation = _simple("LOAD_3D_ANIMATION", "Load3DAnimation")
Photomaker = _simple("PHOTOMAKER", "Photomaker")
Point = _simple("POINT", "Point")
FaceAnalysis = _simple("FACE_ANALYSIS", "FaceAnalysis")
BBOX = _simple("BBOX", "BBOX")
SEGS = _simple("SEGS", "SEGS")
AnyType = _simple("*", "AnyType")
WanCameraEmbedding = _simple("WAN_CAMERA_EMBEDDING", "WanCameraEmbedding")
Tracks = _simple("TRACKS", "Tracks")
Webcam = _simple("WEBCAM", "Webcam")
ImageCompare = _simple("IMAGECOMPARE", "ImageCompare")


def _io_type_of(kind: Any) -> str:
    return kind.io_type if isinstance(kind, (type, _ComfyType)) else str(kind)


class MultiType:
    """An input accepting several socket types (a comma-separated union, as V1 writes it)."""

    io_type = "COMFY_MULTITYPED_V3"

    class Input(Input):
        def __init__(self, id: str | Input, types: Iterable[Any], display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: Mapping[str, Any] | None = None, raw_link: bool | None = None) -> None:
            self.override = copy.copy(id) if isinstance(id, Input) else None
            if self.override is not None:
                optional = optional or self.override.optional
                tooltip = self.override.tooltip or tooltip
                display_name = self.override.display_name or display_name
                id = self.override.id
            super().__init__(str(id), display_name, optional, tooltip, lazy, extra_dict, raw_link)
            self.types = list(types)

        def get_io_type(self) -> str:
            names = [self.override.get_io_type()] if self.override is not None else []
            names += [_io_type_of(kind) for kind in self.types]
            return ",".join(dict.fromkeys(names))

        def options(self) -> dict[str, Any]:
            return (self.override.options() if self.override is not None else {}) | super().options()


class MatchType:
    """Sockets whose type follows what is connected; partyflow checks them as the template's allowed types."""

    io_type = "COMFY_MATCHTYPE_V3"

    class Template:
        def __init__(self, template_id: str, allowed_types: Any = AnyType) -> None:
            self.template_id = template_id
            self.allowed_types = list(allowed_types) if isinstance(allowed_types, Iterable) and not isinstance(
                allowed_types, (str, type)) else [allowed_types]

        def types(self) -> str:
            return ",".join(_io_type_of(kind) for kind in self.allowed_types)

        def as_dict(self) -> dict[str, Any]:
            return {"template_id": self.template_id, "allowed_types": self.types()}

    class Input(Input):
        def __init__(self, id: str, template: MatchType.Template, display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: Mapping[str, Any] | None = None, raw_link: bool | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
            self.template = template

        def get_io_type(self) -> str:
            return self.template.types()

    class Output(Output):
        def __init__(self, template: MatchType.Template, id: str | None = None, display_name: str = "MATCHTYPE",
                     tooltip: str | None = None, is_output_list: bool = False) -> None:
            super().__init__(id, display_name, tooltip, is_output_list)
            self.template = template

        def get_io_type(self) -> str:
            return self.template.types()

        @property
        def io_type(self) -> str:
            return self.template.types()


class _DynamicInput(Input):
    """Inputs whose sockets grow with the graph; declared for import, listed, but not expanded by partyflow."""


class Autogrow(ComfyTypeI):
    io_type = "COMFY_AUTOGROW_V3"

    class TemplatePrefix:
        def __init__(self, input: Input, prefix: str, min: int = 1, max: int = 10) -> None:
            self.input, self.prefix, self.min, self.max = input, prefix, min, max

    class TemplateNames:
        def __init__(self, input: Input, names: list[str], min: int = 1) -> None:
            self.input, self.names, self.min = input, names, min

    class Input(_DynamicInput):
        def __init__(self, id: str, template: Any, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: Mapping[str, Any] | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
            self.template = template

        def get_io_type(self) -> str:
            return "COMFY_AUTOGROW_V3"


class DynamicCombo(ComfyTypeI):
    io_type = "COMFY_DYNAMICCOMBO_V3"

    class Option:
        def __init__(self, key: str, inputs: list[Input]) -> None:
            self.key, self.inputs = key, inputs

    class Input(_DynamicInput):
        def __init__(self, id: str, options: list[DynamicCombo.Option], display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: Mapping[str, Any] | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
            self.choices = options

        def get_io_type(self) -> str:
            return "COMFY_DYNAMICCOMBO_V3"


class DynamicSlot(ComfyTypeI):
    io_type = "COMFY_DYNAMICSLOT_V3"

    class Input(_DynamicInput):
        def __init__(self, slot: Input, inputs: list[Input], display_name: str | None = None,
                     tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: Mapping[str, Any] | None = None) -> None:
            super().__init__(slot.id, display_name or slot.display_name, True, tooltip, lazy, extra_dict)
            self.slot, self.inputs = slot, inputs

        def get_io_type(self) -> str:
            return self.slot.get_io_type()


# --- hidden values --------------------------------------------------------------------------------------------

class Hidden(enum.StrEnum):
    """Hidden values a node may ask for; the member name is the V1 input name, the value its kind."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    """`cls.hidden` inside `execute`: the hidden values of this call; unknown names read as None."""

    def __init__(self, unique_id: Any = None, prompt: Any = None, extra_pnginfo: Any = None, dynprompt: Any = None,
                 auth_token_comfy_org: Any = None, api_key_comfy_org: Any = None, **_: Any) -> None:
        self.unique_id = unique_id
        self.prompt = prompt
        self.extra_pnginfo = extra_pnginfo
        self.dynprompt = dynprompt
        self.auth_token_comfy_org = auth_token_comfy_org
        self.api_key_comfy_org = api_key_comfy_org

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> HiddenHolder:
        values = values or {}
        return cls(**{member.name: values.get(member.name, values.get(member.value)) for member in Hidden})


# --- schema ---------------------------------------------------------------------------------------------------

class Schema:
    """What a V3 node declares about itself; unknown keyword options of newer ComfyUI versions are kept."""

    def __init__(self, node_id: str, display_name: str | None = None, category: str = "sd",
                 inputs: list[Input] | None = None, outputs: list[Output] | None = None,
                 hidden: list[Hidden] | None = None, description: str = "", is_input_list: bool = False,
                 is_output_node: bool = False, is_deprecated: bool = False, is_experimental: bool = False,
                 is_api_node: bool = False, not_idempotent: bool = False, enable_expand: bool = False,
                 **extra: Any) -> None:
        self.node_id = node_id
        self.display_name = display_name
        self.category = category
        self.inputs = list(inputs or [])
        self.outputs = list(outputs or [])
        self.hidden = list(hidden or [])
        self.description = description
        self.is_input_list = is_input_list
        self.is_output_node = is_output_node
        self.is_deprecated = is_deprecated
        self.is_experimental = is_experimental
        self.is_api_node = is_api_node
        self.not_idempotent = not_idempotent
        self.enable_expand = enable_expand
        self.extra = extra

    def validate(self) -> None:
        """Input and output ids must be unique, within and across the two lists."""
        input_ids = [i.id for i in self.inputs]
        output_ids = [o.id for o in self.outputs if o.id is not None]
        problems = []
        for label, ids in (("input", input_ids), ("output", output_ids)):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            if repeated:
                problems.append(f"{label} ids must be unique, but {repeated} repeat")
        shared = set(input_ids) & set(output_ids)
        if shared:
            problems.append(f"ids must differ between inputs and outputs, but {sorted(shared)} are both")
        if problems:
            raise ValueError("; ".join(problems))

    def finalize(self) -> Schema:
        """Output nodes get PROMPT and EXTRA_PNGINFO, API nodes their keys; outputs without ids get one."""
        wanted = list(self.hidden)
        if self.is_api_node:
            wanted += [Hidden.auth_token_comfy_org, Hidden.api_key_comfy_org]
        if self.is_output_node:
            wanted += [Hidden.prompt, Hidden.extra_pnginfo]
        self.hidden = list(dict.fromkeys(wanted))
        for index, output in enumerate(self.outputs):
            if output.id is None:
                output.id = f"_{index}_{output.io_type}_"
        return self

    def v1_inputs(self) -> dict[str, Any]:
        """INPUT_TYPES as a V1 node would return it."""
        result: dict[str, Any] = {"required": {}}
        for declared in self.inputs:
            add_to_dict_v1(declared, result)
        for hidden in self.hidden:
            result.setdefault("hidden", {})[hidden.name] = (hidden.value,)
        return result


def add_to_dict_v1(declared: Input, target: dict[str, Any]) -> None:
    section = "optional" if declared.optional else "required"
    target.setdefault(section, {})[declared.id] = (declared.get_io_type(), declared.options())


def add_to_dict_v3(declared: Input | Output, target: dict[str, Any]) -> None:
    target[declared.id] = (declared.get_io_type(), declared.as_dict())


# --- outputs --------------------------------------------------------------------------------------------------

class NodeOutput:
    """What `execute` returns: the output values, and optionally `ui`, an `expand` graph or a block message."""

    def __init__(self, *args: Any, ui: Any = None, expand: Mapping[str, Any] | None = None,
                 block_execution: str | None = None) -> None:
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self) -> tuple[Any, ...] | None:
        return self.args or None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeOutput:
        result = data.get("result", ())
        if isinstance(result, ExecutionBlocker):
            return cls(block_execution=result.message)
        return cls(*tuple(result or ()), ui=data.get("ui"), expand=data.get("expand"))

    def __getitem__(self, index: int) -> Any:
        return self.args[index]


# --- the node base class --------------------------------------------------------------------------------------

_V1_FLAGS = {
    "CATEGORY": lambda s: s.category,
    "DESCRIPTION": lambda s: s.description,
    "OUTPUT_NODE": lambda s: s.is_output_node,
    "INPUT_IS_LIST": lambda s: s.is_input_list,
    "DEPRECATED": lambda s: s.is_deprecated,
    "EXPERIMENTAL": lambda s: s.is_experimental,
    "API_NODE": lambda s: s.is_api_node,
    "NOT_IDEMPOTENT": lambda s: s.not_idempotent,
    "RETURN_TYPES": lambda s: tuple(o.get_io_type() for o in s.outputs),
    "RETURN_NAMES": lambda s: tuple(o.display_name or o.get_io_type() for o in s.outputs),
    "OUTPUT_IS_LIST": lambda s: tuple(bool(o.is_output_list) for o in s.outputs),
    "OUTPUT_TOOLTIPS": lambda s: tuple(o.tooltip or "" for o in s.outputs),
    "DISPLAY_NAME": lambda s: s.display_name,
}


class _NodeMeta(abc.ABCMeta):
    """Answers the V1 class attributes (RETURN_TYPES, CATEGORY, FUNCTION, ...) from the node's schema."""

    def __getattr__(cls, name: str) -> Any:
        if name == "FUNCTION":
            return "EXECUTE_NORMALIZED_ASYNC" if inspect.iscoroutinefunction(cls.execute) else "EXECUTE_NORMALIZED"
        if name in _V1_FLAGS:
            cached = cls.__dict__.get("_pf_v1")
            if cached is None:
                schema = cls.GET_SCHEMA()
                cached = {key: read(schema) for key, read in _V1_FLAGS.items()}
                type.__setattr__(cls, "_pf_v1", cached)
            return cached[name]
        raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")


class ComfyNode(metaclass=_NodeMeta):
    """Base class of V3 nodes: override the classmethods `define_schema` and `execute`."""

    hidden: HiddenHolder = HiddenHolder()
    RELATIVE_PYTHON_MODULE: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_pf_v1" in cls.__dict__:
            return
        if "fingerprint_inputs" in cls.__dict__:
            cls.IS_CHANGED = _v1_alias(cls, "fingerprint_inputs")  # type: ignore[attr-defined]
        if "validate_inputs" in cls.__dict__:
            cls.VALIDATE_INPUTS = _v1_alias(cls, "validate_inputs")  # type: ignore[attr-defined]

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError(f"{cls.__name__} must define the classmethod define_schema()")

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise NotImplementedError(f"{cls.__name__} must define the classmethod execute()")

    @classmethod
    def check_lazy_status(cls, **kwargs: Any) -> list[str]:
        """Lazy inputs not evaluated yet are all needed, unless the node says otherwise."""
        return [name for name, value in kwargs.items() if value is None]

    # --- the V1 view ----------------------------------------------------------------------------------------
    @classmethod
    def GET_SCHEMA(cls) -> Schema:  # noqa: N802 - ComfyUI's name
        schema = cls.define_schema()
        if not isinstance(schema, Schema):
            raise TypeError(f"{cls.__name__}.define_schema() must return io.Schema, got {type(schema).__name__}")
        schema.finalize()
        schema.validate()
        return schema

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return cls.GET_SCHEMA().v1_inputs()

    @classmethod
    def EXECUTE_NORMALIZED(cls, **kwargs: Any) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        call, values = _prepare_call(cls, kwargs)
        return _to_v1(cls, call.execute(**values))

    @classmethod
    async def EXECUTE_NORMALIZED_ASYNC(cls, **kwargs: Any) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        call, values = _prepare_call(cls, kwargs)
        return _to_v1(cls, await call.execute(**values))


def _v1_alias(cls: type, method: str) -> Any:
    """A V1-named classmethod that calls the V3 one, with its signature (validation reads the parameters)."""
    target = getattr(cls, method)

    @functools.wraps(target)
    def alias(klass: type, *args: Any, **kwargs: Any) -> Any:
        return getattr(klass, method)(*args, **kwargs)

    # the unbound signature (with `cls`): binding to the class drops that first parameter again
    alias.__signature__ = inspect.signature(getattr(target, "__func__", target))  # type: ignore[attr-defined]
    return classmethod(alias)


def _prepare_call(cls: type[ComfyNode], kwargs: dict[str, Any]) -> tuple[type[ComfyNode], dict[str, Any]]:
    """Split hidden values off the inputs and bind them to a per-call subclass (`cls.hidden`)."""
    names = {member.name for member in Hidden}
    hidden = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
    call = _NodeMeta(cls.__name__, (cls,), {"hidden": HiddenHolder.from_dict(hidden), "_pf_v1": cls.__dict__.get(
        "_pf_v1"), "__module__": cls.__module__, "__qualname__": cls.__qualname__})
    return call, kwargs


def _to_v1(cls: type[ComfyNode], returned: Any) -> dict[str, Any]:
    """`NodeOutput` (or a tuple, dict, ExecutionBlocker, None) as the V1 `{"result", "ui", "expand"}` dict."""
    if returned is None:
        returned = NodeOutput()
    elif isinstance(returned, ExecutionBlocker):
        returned = NodeOutput(block_execution=returned.message)
    elif isinstance(returned, tuple):
        returned = NodeOutput(*returned)
    elif isinstance(returned, Mapping):
        returned = NodeOutput.from_dict(returned)
    elif not isinstance(returned, NodeOutput):
        raise TypeError(f"{cls.__name__}.execute() must return io.NodeOutput, got {type(returned).__name__}")
    outputs = len(cls.RETURN_TYPES)
    if returned.block_execution is not None:
        result: tuple[Any, ...] = tuple(ExecutionBlocker(returned.block_execution) for _ in range(outputs))
    else:
        result = tuple(returned.args)
    converted: dict[str, Any] = {"result": result}
    ui = returned.ui
    if ui is not None:
        converted["ui"] = ui.as_dict() if hasattr(ui, "as_dict") else dict(ui)
    if returned.expand is not None:
        converted["expand"] = returned.expand
    return converted


def __getattr__(name: str) -> Any:
    """Socket types of newer ComfyUI versions (`io.BoundingBox`, ...): ComfyUI names them in UPPER_SNAKE_CASE
    after the class, so an unknown CamelCase name becomes that type, with widget-style options accepted."""
    if not name[:1].isupper() or not name.isidentifier() or name.isupper():
        raise AttributeError(f"module 'comfy_api.latest.io' has no attribute {name!r}")
    io_type = "".join(f"_{c}" if c.isupper() and i and not name[i - 1].isupper() else c
                      for i, c in enumerate(name)).upper()
    kind = comfytype(io_type=io_type)(type(name, (ComfyTypeIO,), {"__module__": __name__, "Input": WidgetInput}))
    globals()[name] = kind
    return kind
