"""File tools confined to two directories: read and list in the input folder, write (and read back) in the output.

Every path the model sends is resolved (symlinks and `..` included) and must stay inside its directory, so a model
cannot read the home's config or state database through these tools. Sizes are bounded both ways.
"""

from __future__ import annotations

from pathlib import Path

from partyflow.tools.base import Tool, ToolError
from partyflow.tools.functions import function_tool

MAX_READ_BYTES = 256 * 1024
MAX_WRITE_BYTES = 1024 * 1024
MAX_LIST = 500


def confine(base: Path, relative: str) -> Path:
    """`base/relative`, resolved, or `ToolError` when it would leave `base`."""
    root = base.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise ToolError(f"path {relative!r} is outside the allowed folder; use a path relative to it")
    return target


def file_tools(input_dir: Path, output_dir: Path, *, max_read_bytes: int = MAX_READ_BYTES,
               max_write_bytes: int = MAX_WRITE_BYTES) -> list[Tool]:
    """`read_file`, `write_file` and `list_files`; `folder` arguments choose 'input' (read-only) or 'output'."""
    folders = {"input": Path(input_dir), "output": Path(output_dir)}

    def folder_path(folder: str) -> Path:
        if folder not in folders:
            raise ToolError(f"folder must be 'input' or 'output', got {folder!r}")
        return folders[folder]

    def read_file(path: str, folder: str = "input") -> str:
        """Read a UTF-8 text file.

        Args:
            path: The file's path relative to the folder.
            folder: 'input' (files given to you) or 'output' (files you wrote).
        """
        target = confine(folder_path(folder), path)
        if not target.is_file():
            raise ToolError(f"no file {path!r} in the {folder} folder; list_files shows what is there")
        with target.open("rb") as handle:  # never more than the limit in memory, however large the file
            data = handle.read(max_read_bytes + 1)
        text = data[:max_read_bytes].decode("utf-8", errors="replace")
        return text + ("\n[... truncated]" if len(data) > max_read_bytes else "")

    def write_file(path: str, content: str, append: bool = False) -> dict[str, object]:
        """Write a UTF-8 text file into the output folder (folders are created as needed).

        Args:
            path: The file's path relative to the output folder.
            content: The text to write.
            append: Add to the end of an existing file instead of replacing it.
        """
        data = content.encode("utf-8")
        if len(data) > max_write_bytes:
            raise ToolError(f"content is {len(data)} bytes; the limit is {max_write_bytes}")
        target = confine(folders["output"], path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("ab" if append else "wb") as stream:
            stream.write(data)
        return {"path": target.relative_to(folders["output"].resolve()).as_posix(), "bytes": len(data)}

    def list_files(folder: str = "input", subfolder: str = "") -> list[str]:
        """List the files (recursively) in the input or output folder.

        Args:
            folder: 'input' or 'output'.
            subfolder: Only list under this path relative to the folder.
        """
        base = folder_path(folder)
        root = confine(base, subfolder or ".")
        if not root.is_dir():
            return []
        found = sorted(p.relative_to(base.resolve()).as_posix() for p in root.rglob("*") if p.is_file())
        return found[:MAX_LIST] + ([f"... and {len(found) - MAX_LIST} more"] if len(found) > MAX_LIST else [])

    return [function_tool(read_file), function_tool(write_file), function_tool(list_files)]
