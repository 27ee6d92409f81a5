"""Text search in a folder: lines that contain every word of the query (case-insensitive), with file and line.

Plain substring matching on purpose: it needs no index, is predictable for the model, and the results cite exact
places a later `read_file` can open.
"""

from __future__ import annotations

from pathlib import Path

from partyflow.tools.base import Tool
from partyflow.tools.functions import function_tool

MAX_FILE_BYTES = 2 * 1024 * 1024
TEXT_SUFFIXES = frozenset({".txt", ".md", ".rst", ".csv", ".json", ".yaml", ".yml", ".toml", ".py", ".html",
                           ".xml", ".log", ".ini", ".cfg", ""})


def search_lines(folder: Path, query: str, *, max_results: int = 20) -> list[dict[str, object]]:
    """Matches of all words of `query` in the text files under `folder`, in file order."""
    words = [w.lower() for w in query.split()]
    if not words:
        return []
    root = folder.resolve()
    hits: list[dict[str, object]] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in TEXT_SUFFIXES or path.stat().st_size > MAX_FILE_BYTES:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            lowered = line.lower()
            if all(word in lowered for word in words):
                hits.append({"file": path.relative_to(root).as_posix(), "line": number, "text": line.strip()[:300]})
                if len(hits) >= max_results:
                    return hits
    return hits


def text_search_tool(folder: Path, *, name: str = "search_text", max_results: int = 20) -> Tool:
    def search(query: str) -> list[dict[str, object]]:
        """Find lines containing all the words of the query (case-insensitive) in the documents folder.

        Args:
            query: One or more words; every word must appear on the line.
        """
        return search_lines(Path(folder), query, max_results=max_results)

    return function_tool(search, name=name)
