"""A scripted OpenAI-compatible server that answers knowledge-graph prompts deterministically, for tests and the
knowledge benchmark (every system under test talks to the same one).

It reads the text it is given the way a careful but simple model would: an entity is a run of capitalised words
(not a sentence's first word unless it is followed by another capitalised word), and two entities in one sentence
are related by that sentence. Replies are JSON in the shape of the request's response format (our schema), or
LightRAG's row format when its prompt asks for that. Community reports, summaries and answers are built from the
prompt. It counts calls and tokens (characters / 4) per kind.

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


def lightrag_rows(result: dict[str, Any]) -> str:
    """LightRAG's extraction output: one `entity<|#|>...` or `relation<|#|>...` row per line."""
    rows = [f"entity<|#|>{e['name']}<|#|>{e['type']}<|#|>{e['description']}" for e in result["entities"]]
    rows += [f"relation<|#|>{r['source']}<|#|>{r['target']}<|#|>related<|#|>{r['description']}"
             for r in result["relations"]]
    return "\n".join([*rows, "<|COMPLETE|>"])


class KnowledgeServer(OpenAIServer):
    def __init__(self, *, malformed: bool = False, embed: Any = None) -> None:
        super().__init__()
        self.malformed = malformed
        self.embed = embed  # texts -> vectors: /v1/embeddings answers with a real model (the benchmark's peers)
        self.calls: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def record(self, request: Recorded) -> Reply | None:
        scripted = super().record(request)
        if scripted is None and self.embed is not None and request.path.startswith("/v1/embeddings"):
            body = request.body if isinstance(request.body, dict) else {}
            inputs = body.get("input", [])
            inputs = [inputs] if isinstance(inputs, str) else inputs
            vectors = self.embed(inputs)
            with self._count_lock:
                self.calls["embed"] += 1
            return Reply.json({"object": "list", "model": body.get("model", "embed"),
                               "data": [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]}
                                        for i, v in enumerate(vectors)],
                               "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})
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
        if "---Input Text---" in last:  # LightRAG's extraction prompt (its <|#|> row format)
            text = last.split("---Input Text---", 1)[1].split("```", 2)[1]
            return "extract", lightrag_rows(extract(text))
        if "Based on the last extraction task" in last:  # LightRAG's gleaning pass: nothing was missed
            return "glean", "<|COMPLETE|>"
        if "high_level_keywords" in prompt:  # LightRAG's query keywords
            query = prompt.rsplit("---Real Data---", 1)[-1]
            words = names_in(query.split("User Query:", 1)[-1].split("---", 1)[0])
            return "keywords", json.dumps({"high_level_keywords": words, "low_level_keywords": words})
        if "Merge these descriptions" in last or "comprehensive summary" in prompt.lower():
            return "summary", " ".join(last.split("\n")[1:])[:500]
        if "Answer the question" in last:
            return "answer", "According to [1], " + last.split("Question:")[-1].strip()
        return "other", " ".join(last.split())[:400]  # e.g. a peer's description summary: the text it was given
