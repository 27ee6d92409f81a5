"""The round table: several agents take turns on one shared transcript until a stop condition.

Who speaks next is decided by a moderator model (asked for a JSON `{"next": name}` or `{"next": "DONE"}`) or,
without one, by a fixed rotation. Each speaker is a full `Agent` (its own system prompt, tools and limits) given
the topic and the transcript so far as its task, so a member can look things up before it speaks.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from partyflow.agents.loop import Agent
from partyflow.agents.record import AgentResult, Step, usage_json
from partyflow.llm import ChatModel, ChatRequest, LLMError, SystemMessage, Usage, UserMessage

TableStop = Literal["max_turns", "stop_phrase", "moderator", "error"]
DONE = "DONE"


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str
    result: AgentResult | None = None

    def to_json(self) -> dict[str, Any]:
        return {"speaker": self.speaker, "text": self.text,
                "stop_reason": self.result.stop_reason if self.result else None,
                "steps": len(self.result.steps) if self.result else 0}


@dataclass
class RoundTableResult:
    transcript: list[Turn]
    stop_reason: TableStop
    usage: Usage
    error: str | None = None
    decisions: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The transcript as `speaker: text` paragraphs."""
        return "\n\n".join(f"{turn.speaker}: {turn.text}" for turn in self.transcript)

    def to_json(self) -> dict[str, Any]:
        return {"stop_reason": self.stop_reason, "error": self.error, "usage": usage_json(self.usage),
                "turns": [turn.to_json() for turn in self.transcript], "decisions": self.decisions}


class RoundTable:
    """Agents (unique `name`s) in turn; `max_turns` bounds the talk, `stop_phrase` in a turn ends it early."""

    def __init__(self, members: Sequence[Agent], *, moderator: ChatModel | None = None,
                 moderator_model: str | None = None, moderator_prompt: str = "", max_turns: int = 6,
                 stop_phrase: str = "") -> None:
        if not members:
            raise ValueError("a round table needs at least one member")
        names = [m.name for m in members]
        if len({n.lower() for n in names}) != len(names):
            raise ValueError(f"round table members need unique names, got {names}")
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.members = list(members)
        self.moderator = moderator
        self.moderator_model = moderator_model
        self.moderator_prompt = moderator_prompt
        self.max_turns = max_turns
        self.stop_phrase = stop_phrase.strip()

    async def run(self, topic: str, *, on_turn: Callable[[Turn], None] | None = None,
                  on_step: Callable[[str, Step], None] | None = None) -> RoundTableResult:
        """Hold the discussion; `on_turn` hears each finished turn, `on_step` each step of a speaker's loop."""
        transcript: list[Turn] = []
        usage = Usage()
        decisions: list[str] = []
        rotation = 0
        while len(transcript) < self.max_turns:
            speaker: Agent | None = self.members[rotation % len(self.members)]
            if self.moderator is not None:
                try:
                    speaker, decision, spent = await self._moderate(topic, transcript, speaker)
                except LLMError as exc:
                    return RoundTableResult(transcript, "error", usage, f"the moderator failed: {exc}", decisions)
                usage += spent
                decisions.append(decision)
                if speaker is None:
                    return RoundTableResult(transcript, "moderator", usage, None, decisions)
            report = None if on_step is None else functools.partial(on_step, speaker.name)
            result = await speaker.run(self._task(topic, transcript, speaker.name), on_step=report)
            usage += result.usage
            turn = Turn(speaker.name, result.answer.strip(), result)
            transcript.append(turn)
            rotation = self.members.index(speaker) + 1
            if on_turn is not None:
                on_turn(turn)
            if result.stop_reason == "error":
                return RoundTableResult(transcript, "error", usage, f"{speaker.name}: {result.error}", decisions)
            if self.stop_phrase and self.stop_phrase.lower() in turn.text.lower():
                return RoundTableResult(transcript, "stop_phrase", usage, None, decisions)
        return RoundTableResult(transcript, "max_turns", usage, None, decisions)

    def _task(self, topic: str, transcript: Sequence[Turn], name: str) -> str:
        said = "\n\n".join(f"{t.speaker}: {t.text}" for t in transcript) or "(nobody has spoken yet)"
        ending = f' When the discussion is settled, include "{self.stop_phrase}".' if self.stop_phrase else ""
        return (f"Topic: {topic}\n\nTranscript so far:\n{said}\n\nYou are {name}. Write your next contribution "
                f"only (no name prefix).{ending}")

    async def _moderate(self, topic: str, transcript: Sequence[Turn], default: Agent,
                        ) -> tuple[Agent | None, str, Usage]:
        roster = "\n".join(f"- {m.name}" + (f": {m.system_prompt[:200]}" if m.system_prompt else "")
                           for m in self.members)
        said = "\n\n".join(f"{t.speaker}: {t.text}" for t in transcript) or "(nobody has spoken yet)"
        system = (f"You moderate a discussion among:\n{roster}\nDecide who speaks next, or end the discussion "
                  f'when it has reached a conclusion. Answer with only JSON: {{"next": "<name>"}} or '
                  f'{{"next": "{DONE}"}}.' + (f"\n{self.moderator_prompt}" if self.moderator_prompt else ""))
        # Plain text plus a lenient reading rather than a response_format: see `router.classify` for why.
        request = ChatRequest(messages=(SystemMessage(content=system),
                                        UserMessage(content=f"Topic: {topic}\n\nTranscript:\n{said}")),
                              model=self.moderator_model, temperature=0)
        assert self.moderator is not None
        response = await self.moderator.achat(request)
        choice = _next_name(response.text)
        spent = response.usage or Usage()
        if choice is not None and choice.upper() == DONE:
            return None, DONE, spent
        for member in self.members:
            if choice is not None and member.name.lower() == choice.lower():
                return member, member.name, spent
        return default, f"{default.name} (moderator reply {response.text[:60]!r} named nobody)", spent


def _next_name(reply: str) -> str | None:
    try:
        value = json.loads(reply)
    except json.JSONDecodeError:
        return reply.strip().strip("\"'") or None
    if isinstance(value, dict) and isinstance(value.get("next"), str):
        return value["next"].strip()
    return value.strip() if isinstance(value, str) else None
