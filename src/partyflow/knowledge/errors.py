"""The one error type of the knowledge library: what went wrong, where (a file, a setting, a knowledge base) and
how to fix it, so the CLI prints one line and a node shows a message a user can act on."""

from __future__ import annotations


class KnowledgeError(ValueError):
    """A knowledge-base problem the user can fix; `where` names the file, setting or knowledge base."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.where = where
        self.hint = hint
        text = f"{where}: {message}" if where else message
        if hint:
            text = f"{text} ({hint})"
        super().__init__(text)


class DocumentError(KnowledgeError):
    """One file could not be read (corrupt, encrypted, empty, unsupported, too large); the others still ingest."""


class ExtractionError(KnowledgeError):
    """The model's entity/relation extraction could not be used (malformed JSON after a retry, a failed call)."""


class MissingExtraError(KnowledgeError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, module: str, extra: str = "knowledge") -> None:
        super().__init__(f"this needs the Python package {module!r}",
                         hint=f"pip install 'partyflow[{extra}]'")
