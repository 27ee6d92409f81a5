from partyflow.llm.providers.openai_wire import request_body
from partyflow.llm.types import (
    AssistantMessage,
    ChatRequest,
    ImagePart,
    ResponseFormat,
    SystemMessage,
    TextPart,
    Tool,
    ToolCall,
    ToolMessage,
    UserMessage,
)

TOOL = Tool(name="weather", description="forecast", parameters={"type": "object", "properties": {}})


def test_minimal_body_sends_no_nulls():
    body = request_body(ChatRequest(messages=(UserMessage(content="hi"),)), "m")
    assert body == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_every_message_kind_maps_to_the_wire():
    messages = (
        SystemMessage(content="sys"),
        UserMessage(content=(TextPart(text="look"), ImagePart(url="https://x/cat.png", detail="low")), name="ann"),
        AssistantMessage(tool_calls=(ToolCall(id="c1", name="weather", arguments='{"city": "Oslo"}'),)),
        ToolMessage(tool_call_id="c1", content="rain"),
    )
    wire = request_body(ChatRequest(messages=messages), "m")["messages"]
    assert wire == [
        {"role": "system", "content": "sys"},
        {"role": "user", "name": "ann", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "rain"},
    ]


def test_tools_choice_formats_and_options():
    request = ChatRequest(messages=(UserMessage(content="x"),), tools=(TOOL,), tool_choice="weather",
                          parallel_tool_calls=True, response_format=ResponseFormat.from_schema({"type": "object"}),
                          temperature=0, max_tokens=5, seed=1, stop=("\n",), extra={"top_k": 3})
    body = request_body(request, "m")
    assert body["tools"] == [{"type": "function", "function": {
        "name": "weather", "description": "forecast", "parameters": {"type": "object", "properties": {}}}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert body["parallel_tool_calls"] is True
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "response", "schema": {"type": "object"}, "strict": True}}
    assert (body["temperature"], body["max_tokens"], body["seed"], body["stop"]) == (0, 5, 1, ["\n"])
    assert body["extra_body"] == {"top_k": 3}


def test_named_tool_choices_pass_through():
    request = ChatRequest(messages=(UserMessage(content="x"),), tool_choice="required",
                          response_format=ResponseFormat.json_mode())
    body = request_body(request, "m")
    assert body["tool_choice"] == "required" and body["response_format"] == {"type": "json_object"}
