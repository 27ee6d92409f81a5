import json
import pickle

import pytest
from pydantic import ValidationError

from partyflow.llm.schema import SchemaError, check_json_schema
from partyflow.llm.types import (
    AssistantMessage,
    ChatModel,
    ChatRequest,
    ChatResponse,
    EmbeddingModel,
    FinishReason,
    ImagePart,
    ResponseFormat,
    SystemMessage,
    TextPart,
    Tool,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
    dump_messages,
    load_messages,
)

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
           "required": ["city"], "additionalProperties": False}


def a_history():
    return (
        SystemMessage(content="be brief"),
        UserMessage(content=(TextPart(text="what is this?"), ImagePart.from_bytes(b"\x89PNG", "image/png"))),
        AssistantMessage(tool_calls=(ToolCall(id="c1", name="look", arguments='{"x": 1}'),)),
        ToolMessage(tool_call_id="c1", content="a cat"),
        AssistantMessage(content="A cat."),
    )


def test_history_round_trips_through_json():
    history = a_history()
    assert load_messages(json.dumps(dump_messages(history))) == history
    assert load_messages(dump_messages(history)) == history


def test_message_text_ignores_images():
    assert a_history()[1].text == "what is this?"


def test_bad_role_is_rejected():
    with pytest.raises(ValidationError):
        load_messages([{"role": "wizard", "content": "x"}])


def test_image_part_refuses_unknown_schemes_and_inlines_files(tmp_path):
    with pytest.raises(ValidationError, match="http://, https:// or data:image/"):
        ImagePart(url="file:///etc/passwd")
    (tmp_path / "dot.jpg").write_bytes(b"\xff\xd8")
    assert ImagePart.from_path(tmp_path / "dot.jpg").url == "data:image/jpeg;base64,/9g="


def test_tool_accepts_json_schema():
    assert Tool(name="weather", description="forecast", parameters=WEATHER).parameters == WEATHER


@pytest.mark.parametrize(("parameters", "where"), [
    ({"city": "string"}, "/type"),                                             # a Python-ish spec, not a schema
    ({"type": "object", "properties": {"city": {"type": "str"}}}, "/properties/city/type"),
    ({"type": "object", "properties": {"city": "string"}}, "/properties/city"),
    ({"type": "object", "required": "city"}, "/required"),
    ({"type": "object", "properties": {"s": {"type": "string", "pattern": "("}}}, "/properties/s/pattern"),
    ({"type": "object", "properties": {"s": {"anyOf": []}}}, "/properties/s/anyOf"),
    ({"type": "object", "properties": {"s": {"type": "string", "minLength": -1}}}, "/properties/s/minLength"),
    ({"type": "array", "items": {"type": "string"}}, "/type"),                 # tools take objects
])
def test_tool_rejects_what_is_not_json_schema(parameters, where):
    with pytest.raises(ValidationError, match=f"not a JSON schema at {where}"):
        Tool(name="weather", parameters=parameters)


def test_schema_check_allows_unknown_keywords_and_boolean_schemas():
    check_json_schema({"type": ["string", "null"], "x-vendor": 1, "items": True, "not": False})
    with pytest.raises(SchemaError):
        check_json_schema([1, 2])


def test_tool_name_is_checked():
    with pytest.raises(ValidationError, match="letters, digits"):
        Tool(name="get weather")


def test_tool_call_arguments():
    assert ToolCall(id="1", name="f", arguments='{"a": 1}').parsed_arguments() == {"a": 1}
    with pytest.raises(ValueError, match="not valid JSON"):
        ToolCall(id="1", name="f", arguments='{"a": ').parsed_arguments()
    with pytest.raises(ValueError, match="must be a JSON object"):
        ToolCall(id="1", name="f", arguments="[1]").parsed_arguments()


def test_response_formats():
    assert ResponseFormat.json_mode().type == "json_object"
    assert ResponseFormat.from_schema(WEATHER, name="w").json_schema == WEATHER
    with pytest.raises(ValidationError, match="needs a json_schema"):
        ResponseFormat(type="json_schema")
    with pytest.raises(ValidationError, match="not a JSON schema"):
        ResponseFormat.from_schema({"type": "thing"})


def test_request_needs_messages_and_sane_sampling():
    with pytest.raises(ValidationError, match="at least one message"):
        ChatRequest(messages=())
    with pytest.raises(ValidationError):
        ChatRequest(messages=(UserMessage(content="x"),), temperature=-1)


def test_fingerprint_is_stable_and_covers_the_whole_request():
    def request(**changes):
        return ChatRequest(messages=a_history(), tools=(Tool(name="w", parameters=WEATHER),), seed=1, **changes)

    assert request().fingerprint() == request().fingerprint()
    assert request().fingerprint() != request(temperature=0.5).fingerprint()
    assert request().fingerprint() != request(model="other").fingerprint()


def test_deterministic_means_temperature_zero_or_a_seed():
    message = (UserMessage(content="x"),)
    assert ChatRequest(messages=message, temperature=0).is_deterministic
    assert ChatRequest(messages=message, seed=3, temperature=1).is_deterministic
    assert not ChatRequest(messages=message).is_deterministic


def test_usage_adds_up():
    total = Usage(prompt_tokens=3, completion_tokens=2, cost=0.5) + Usage(prompt_tokens=1, completion_tokens=1)
    assert (total.prompt_tokens, total.completion_tokens, total.total_tokens, total.cost) == (4, 3, 7, 0.5)
    assert (Usage() + Usage()).cost is None


def test_finish_reasons():
    assert FinishReason.parse("function_call") is FinishReason.TOOL_CALLS
    assert FinishReason.parse("eos_token") is FinishReason.OTHER
    assert FinishReason.parse(None) is None


def test_responses_pickle_and_parse_json():
    response = ChatResponse(message=AssistantMessage(content='{"a": 1}'), model="m", provider="p",
                            finish_reason=FinishReason.STOP, usage=Usage(prompt_tokens=1))
    assert pickle.loads(pickle.dumps(response)) == response
    assert response.parsed_json() == {"a": 1}
    with pytest.raises(ValueError, match="not JSON"):
        response.model_copy(update={"message": AssistantMessage(content="nope")}).parsed_json()


def test_protocols_are_structural():
    class Fake:
        name = "fake"
        default_model = None

        def chat(self, request): ...
        async def achat(self, request): ...
        def stream(self, request): ...
        def astream(self, request): ...
        def close(self): ...
        def embed(self, texts, *, model=None): ...
        async def aembed(self, texts, *, model=None): ...

    assert isinstance(Fake(), ChatModel)
    assert isinstance(Fake(), EmbeddingModel)
