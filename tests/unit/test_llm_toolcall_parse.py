import pytest

from partyflow.llm.toolcall_parse import parse_tool_calls

TOOLS = ("weather", "search")


@pytest.mark.parametrize(("text", "prose", "calls"), [
    ('<tool_call>\n{"name": "weather", "arguments": {"city": "Oslo"}}\n</tool_call>', "",
     [("weather", '{"city": "Oslo"}')]),
    ('Let me check.<tool_call>{"name": "weather", "arguments": {"city": "A"}}</tool_call>'
     '<tool_call>{"name": "search", "arguments": {"q": "b"}}</tool_call>', "Let me check.",
     [("weather", '{"city": "A"}'), ("search", '{"q": "b"}')]),
    ('<tool_call>{"name": "weather", "arguments": {}}', "", [("weather", "{}")]),          # unclosed at EOS
    ('{"name": "weather", "parameters": {"city": "Lima"}}', "", [("weather", '{"city": "Lima"}')]),  # Llama 3
    ('[TOOL_CALLS] [{"name": "search", "arguments": {"q": "x"}}]', "", [("search", '{"q": "x"}')]),  # Mistral
    ('Sure:\n```json\n{"name": "search", "arguments": "{\\"q\\": 1}"}\n```', "Sure:", [("search", '{"q": 1}')]),
    ('Calling {"type": "function", "function": {"name": "weather", "arguments": {"c": 1}}}', "Calling",
     [("weather", '{"c": 1}')]),
])
def test_recognises_the_common_conventions(text, prose, calls):
    found_prose, found = parse_tool_calls(text, TOOLS)
    assert found_prose == prose
    assert [(c.name, c.arguments) for c in found] == calls
    assert len({c.id for c in found}) == len(found)


@pytest.mark.parametrize("text", [
    "The weather is fine.",
    '{"name": "unknown_tool", "arguments": {}}',
    '{"answer": 42}',
    "<tool_call>not json</tool_call>",
])
def test_leaves_other_text_alone(text):
    prose, calls = parse_tool_calls(text, TOOLS)
    assert (prose, calls) == (text, ())


def test_without_tools_nothing_is_a_call():
    text = '{"name": "weather", "arguments": {}}'
    assert parse_tool_calls(text, ()) == (text, ())
