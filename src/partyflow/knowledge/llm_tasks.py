"""Everything the knowledge library asks a chat model: entity/relation extraction (with optional gleaning passes),
description summaries, community reports and answers with citations.

Extraction uses structured output (a JSON schema response format) through `partyflow.llm`, and its results are
cached in the knowledge base by (prompt version, model, settings, chunk text): re-indexing unchanged text makes
no call. A reply that is not the JSON asked for is retried once, then reported as an `ExtractionError` naming the
chunk; nothing of that document is written.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from partyflow.knowledge.errors import ExtractionError, KnowledgeError
from partyflow.llm import (
    AssistantMessage,
    BadResponseError,
    ChatModel,
    ChatRequest,
    LLMError,
    Message,
    ResponseFormat,
    SystemMessage,
    UserMessage,
)

PROMPT_VERSION = "extract-v1"
DEFAULT_ENTITY_TYPES = ("person", "organization", "location", "event", "product", "concept", "document", "date")

EXTRACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entities": {"type": "array", "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "type": {"type": "string"}, "description": {"type": "string"}},
            "required": ["name", "type", "description"], "additionalProperties": False}},
        "relations": {"type": "array", "items": {
            "type": "object",
            "properties": {"source": {"type": "string"}, "target": {"type": "string"},
                           "description": {"type": "string"},
                           "keywords": {"type": "array", "items": {"type": "string"}},
                           "weight": {"type": "number"}},
            "required": ["source", "target", "description", "keywords", "weight"], "additionalProperties": False}},
    },
    "required": ["entities", "relations"],
    "additionalProperties": False,
}

REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "summary": {"type": "string"}, "rating": {"type": "number"}},
    "required": ["title", "summary", "rating"], "additionalProperties": False,
}

_SYSTEM = (
    "You extract a knowledge graph from text. Return JSON with two lists.\n"
    "entities: every named entity in the text, each {{name, type, description}}; type is one of: {types}; the "
    "description says what the text states about the entity, in one or two sentences.\n"
    "relations: every relationship the text states between two of those entities, each {{source, target, "
    "description, keywords, weight}}; source and target are entity names exactly as in the entities list; "
    "keywords are a few words naming the kind of relationship; weight is 1 (weak) to 10 (explicit and central).\n"
    "Use only facts stated in the text. Write names as they appear in the text."
)
_GLEAN = ("Some entities or relations in the text may have been missed. Return JSON in the same format with only "
          "the missing ones (empty lists if none).")


class ExtractedEntity(BaseModel):
    name: str = Field(min_length=1)
    type: str = "concept"
    description: str = ""

    @field_validator("name", "type", "description", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value


class ExtractedRelation(BaseModel):
    source: str = Field(min_length=1)
    target: str = Field(min_length=1)
    description: str = ""
    keywords: list[str] = Field(default_factory=list)
    weight: float = 1.0

    @field_validator("keywords", mode="before")
    @classmethod
    def _keywords(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class Extraction(BaseModel):
    entities: list[ExtractedEntity] = Field(default_factory=list)
    relations: list[ExtractedRelation] = Field(default_factory=list)

    def merged(self, more: Extraction) -> Extraction:
        return Extraction(entities=[*self.entities, *more.entities], relations=[*self.relations, *more.relations])


@dataclass
class LLMStats:
    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, response: Any) -> None:
        with self._lock:
            self.calls += 1
            if response is not None and response.usage is not None:
                self.prompt_tokens += response.usage.prompt_tokens
                self.completion_tokens += response.usage.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {"llm_calls": self.calls, "cached_extractions": self.cached, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


def _sha(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


class KnowledgeLLM:
    """A chat model put to the knowledge base's tasks; caches go to the knowledge base's SQLite connection."""

    def __init__(self, chat: ChatModel, conn: Any, *, model: str | None = None, gleaning: int = 0,
                 concurrency: int = 4, entity_types: Sequence[str] = DEFAULT_ENTITY_TYPES,
                 json_schema: bool = True) -> None:
        self.chat = chat
        self.model = model or chat.default_model or ""
        self.gleaning = max(0, gleaning)
        self.concurrency = max(1, concurrency)
        self.entity_types = tuple(entity_types)
        self.json_schema = json_schema
        self.stats = LLMStats()
        self._conn = conn

    # --- extraction ------------------------------------------------------------------------------------------

    def extraction_key(self, text: str) -> str:
        return _sha(PROMPT_VERSION, self.chat.name, self.model, ",".join(self.entity_types), str(self.gleaning), text)

    def extract_many(self, texts: Sequence[str], *, where: str = "") -> list[Extraction]:
        """One extraction per text, from the cache where possible, the rest concurrently (up to `concurrency`)."""
        keys = [self.extraction_key(text) for text in texts]
        results: dict[str, Extraction] = {}
        with self._conn.lock:
            for key in dict.fromkeys(keys):
                row = self._conn.execute("SELECT result FROM extraction_cache WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    results[key] = Extraction.model_validate_json(row[0])
        self.stats.cached += sum(1 for key in keys if key in results)
        todo = {key: text for key, text in zip(keys, texts, strict=True) if key not in results}
        if todo:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo)),
                                    thread_name_prefix="kb-extract") as pool:
                done = dict(zip(todo, pool.map(lambda item: self._extract(item, where), todo.items()), strict=True))
            with self._conn.lock:
                self._conn.executemany("INSERT OR REPLACE INTO extraction_cache (key, result) VALUES (?, ?)",
                                       [(key, value.model_dump_json()) for key, value in done.items()])
            results.update(done)
        return [results[key] for key in keys]

    def _extract(self, item: tuple[str, str], where: str) -> Extraction:
        _, text = item
        messages: list[Message] = [SystemMessage(content=_SYSTEM.format(types=", ".join(self.entity_types))),
                                   UserMessage(content=f"Text:\n{text}")]
        result, reply = self._json_call(messages, EXTRACTION_SCHEMA, "knowledge_graph", Extraction, where)
        for _ in range(self.gleaning):
            messages += [AssistantMessage(content=reply), UserMessage(content=_GLEAN)]
            more, reply = self._json_call(messages, EXTRACTION_SCHEMA, "knowledge_graph", Extraction, where)
            if not more.entities and not more.relations:
                break
            result = result.merged(more)
        return result

    def _json_call(self, messages: list[Message], schema: dict[str, Any], name: str, model: type[BaseModel],
                   where: str) -> tuple[Any, str]:
        fmt = ResponseFormat.from_schema(schema, name=name) if self.json_schema else ResponseFormat.json_mode()
        request = ChatRequest(messages=tuple(messages), model=self.model or None, response_format=fmt,
                              temperature=0)
        problem = ""
        for _attempt in range(2):  # one retry: models occasionally break JSON once
            try:
                response = self.chat.chat(request)
            except BadResponseError as exc:  # the provider's own JSON check: the same as invalid JSON here
                self.stats.add(None)
                problem = exc.message
                continue
            except LLMError as exc:
                raise ExtractionError(f"the model call failed: {exc}", where=where or None) from None
            self.stats.add(response)
            text = response.text.strip()
            try:
                return model.model_validate_json(_strip_fence(text)), text
            except ValidationError as exc:
                problem = _brief(exc)
        raise ExtractionError(f"the model's {name} reply is not the JSON asked for ({problem})", where=where or None,
                              hint="use a model that supports structured output, or retry")

    # --- summaries, reports, answers ----------------------------------------------------------------------------

    def summarize(self, name: str, descriptions: Sequence[str], limit_chars: int) -> str:
        """One description from many, when their concatenation outgrows `limit_chars`; cached by content."""
        joined = "\n".join(descriptions)
        key = _sha("summary-v1", self.chat.name, self.model, name, joined)
        with self._conn.lock:
            row = self._conn.execute("SELECT text FROM summary_cache WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return row[0]
        prompt = (f"Merge these descriptions of {name!r} into one comprehensive description of at most "
                  f"{limit_chars // 6} words, keeping every distinct fact and resolving contradictions:\n{joined}")
        text = self._text_call(prompt)[:limit_chars * 2]
        with self._conn.lock:
            self._conn.execute("INSERT OR REPLACE INTO summary_cache (key, text) VALUES (?, ?)", (key, text))
        return text

    def community_report(self, facts: str) -> dict[str, Any]:
        key = _sha("report-v1", self.chat.name, self.model, facts)
        with self._conn.lock:
            row = self._conn.execute("SELECT text FROM summary_cache WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return json.loads(row[0])
        messages: list[Message] = [
            SystemMessage(content="You write a report on a community of related entities in a knowledge graph: a "
                                  "short title, a summary of the key facts and how the entities relate, and a rating "
                                  "0-10 of how important the community is. Return JSON {title, summary, rating}."),
            UserMessage(content=facts)]
        report, _ = self._json_call(messages, REPORT_SCHEMA, "community_report", _Report, "community report")
        value = report.model_dump()
        with self._conn.lock:
            self._conn.execute("INSERT OR REPLACE INTO summary_cache (key, text) VALUES (?, ?)", (key, json.dumps(value)))
        return value

    def answer(self, question: str, context: str) -> str:
        prompt = ("Answer the question using only the context. Cite the sources you use as [n] with the numbers "
                  "shown in the context. If the context does not contain the answer, say so.\n\n"
                  f"Context:\n{context}\n\nQuestion: {question}")
        return self._text_call(prompt)

    def _text_call(self, prompt: str) -> str:
        request = ChatRequest(messages=(UserMessage(content=prompt),), model=self.model or None, temperature=0)
        try:
            response = self.chat.chat(request)
        except LLMError as exc:
            raise KnowledgeError(f"the model call failed: {exc}", where="llm") from None
        self.stats.add(response)
        return response.text.strip()


class _Report(BaseModel):
    title: str
    summary: str
    rating: float = 0.0


def _strip_fence(text: str) -> str:
    """Models asked for JSON sometimes wrap it in a Markdown code fence anyway."""
    if text.startswith("```"):
        body = text.split("\n", 1)[1] if "\n" in text else ""
        return body.rsplit("```", 1)[0]
    return text


def _brief(exc: ValidationError) -> str:
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]
