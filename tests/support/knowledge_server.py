"""A scripted OpenAI-compatible server that answers knowledge-graph prompts deterministically, for tests and the
knowledge benchmark (every system under test talks to the same one).

It reads the text it is given the way a careful but simple model would: an entity is a run of capitalised words
(not a sentence's first word unless it is followed by another capitalised word), and two entities in one sentence
are related by that sentence. Replies are JSON in the shape of the request's response format (our schema), or in
LightRAG/nano-graphrag's tuple format when the prompt asks for that (`("entity"<|>...)` records). Community
reports, summaries and answers are built from the prompt. It counts calls and tokens (characters / 4) per kind.

`malformed=True` makes every extraction reply invalid JSON, to test how a client copes.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from typing import Any

from tests.support.openai_server import OpenAIServer, Recorded, Reply, chat_completion

_NAME = re.compile(r"\b[A-Z][A-Za-z0-9&'-]*(?:\s+(?:of\s+|de\s+)?[A-Z][A-Za-z0-9&'-]*)*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_STOP = frozenset({"The", "A", "An", "It", "This", "That", "These", "Those", "In", "On", "At", "For", "If", "When",
                   "Who", "What", "Which", "Where", "How", "Why", "And", "But", "Or", "Text", "Entities", "Relations",
                   "Slide", "Sheet", "Notes", "Context", "Question", "Use", "Return", "Some", "Each", "Every"})


def names_in(sentence: str) -> list[str]:
    found = []
    for match in _NAME.finditer(sentence):
        words = match.group(0).split()
        while words and words[0] in _STOP:
            words = words[1:]
        if words:
            found.append(" ".join(words))
    return list(dict.fromkeys(found))


def extract(text: str) -> dict[str, Any]:
    entities: dict[str, dict[str, str]] = {}
    relations: list[dict[str, Any]] = []
    for sentence in _SENTENCE.split(text):
        sentence = sentence.strip()
        names = names_in(sentence)
        for name in names:
            entities.setdefault(name, {"name": name, "type": "concept", "description": sentence})
        for source, target in zip(names, names[1:], strict=False):
            relations.append({"source": source, "target": target, "description": sentence,
                              "keywords": ["related"], "weight": 5})
    return {"entities": list(entities.values()), "relations": relations}


def tuple_format(result: dict[str, Any]) -> str:
    """The record format LightRAG and nano-graphrag prompt for (their default delimiters)."""
    records = [f'("entity"<|>{e["name"].upper()}<|>{e["type"].upper()}<|>{e["description"]})'
               for e in result["entities"]]
    records += [f'("relationship"<|>{r["source"].upper()}<|>{r["target"].upper()}<|>{r["description"]}<|>'
                f'related<|>{r["weight"]})' for r in result["relations"]]
    return "##".join(records) + "<|COMPLETE|>"


class KnowledgeServer(OpenAIServer):
    def __init__(self, *, malformed: bool = False) -> None:
        super().__init__()
        self.malformed = malformed
        self.calls: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def record(self, request: Recorded) -> Reply | None:
        scripted = super().record(request)
        if scripted is not None or request.method != "POST" or not request.path.startswith("/v1/chat/completions"):
            return scripted
        body = request.body if isinstance(request.body, dict) else {}
        messages = body.get("messages", [])
        prompt = "\n".join(m.get("content") or "" for m in messages if isinstance(m.get("content"), str))
        last = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
        kind, text = self._answer(prompt, last, body)
        with self._count_lock:
            self.calls[kind] += 1
            self.tokens[kind] += len(prompt) // 4 + len(text) // 4
        return Reply.json(chat_completion(text, model=body.get("model") or "tiny-chat",
                                          prompt_tokens=len(prompt) // 4, completion_tokens=len(text) // 4))

    def _answer(self, prompt: str, last: str, body: dict[str, Any]) -> tuple[str, str]:
        fmt = (body.get("response_format") or {}).get("json_schema", {}).get("name")
        if fmt == "knowledge_graph":
            if self.malformed:
                return "extract", '{"entities": [{"name": "Broken'
            if "may have been missed" in last:
                return "glean", json.dumps({"entities": [], "relations": []})
            return "extract", json.dumps(extract(last.removeprefix("Text:\n")))
        if fmt == "community_report":
            names = re.findall(r"^- ([^(\n]+) \(", last, re.MULTILINE)[:3]
            return "report", json.dumps({"title": " / ".join(n.strip() for n in names) or "community",
                                         "summary": " ".join(last.split("\n")[1:6])[:600], "rating": 5})
        if '("entity"' in prompt or "<|>" in prompt:  # LightRAG / nano-graphrag extraction or gleaning
            if "MANY entities" in last or "many entities" in last.lower() and "missed" in last.lower():
                return "glean", "<|COMPLETE|>"
            if re.search(r"YES|NO", last) and "answer" in last.lower() and "missed" not in last.lower():
                return "glean", "NO"
            return "extract", tuple_format(extract(_peer_text(prompt)))
        if "Merge these descriptions" in last or "comprehensive summary" in prompt.lower():
            return "summary", " ".join(last.split("\n")[1:])[:500]
        if "Answer the question" in last:
            return "answer", "According to [1], " + last.split("Question:")[-1].strip()
        if '"keywords"' in prompt or "high_level_keywords" in prompt:
            words = names_in(last)
            return "keywords", json.dumps({"high_level_keywords": words, "low_level_keywords": words})
        if '"points"' in prompt or "community" in prompt.lower():
            return "report", json.dumps({"title": "community", "summary": last[:400], "rating": 5,
                                         "rating_explanation": "", "findings": [], "points": []})
        return "other", "I do not know."


def _peer_text(prompt: str) -> str:
    """The input text inside a peer's extraction prompt (after its last 'Text:' or '-Real Data-' marker)."""
    for marker in ("---Real Data---", "-Real Data-", "######################\nOutput:", "Text:"):
        if marker in prompt:
            tail = prompt.rsplit(marker, 1)[1]
            if "Text:" in tail:
                tail = tail.split("Text:", 1)[1]
            return tail.split("######################")[0].split("Output:")[0]
    return prompt
