"""Shared pieces of the benchmarks: a throwaway engine home with one node pack, timing, and tables.

The benchmarks are scripts (`.venv/bin/python bench/<name>.py`); Python puts `bench/` on the path, so
they import this module by its plain name.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from partyflow.engine.engine import Engine

Prompt = dict[str, dict[str, Any]]
console = Console(width=140)  # wide enough for every table, also when piped


@contextmanager
def engine_with_pack(source: str, *, cache: str) -> Iterator[Engine]:
    """An engine over a fresh temporary home whose only pack is `source` (no built-in packs)."""
    with tempfile.TemporaryDirectory(prefix="partyflow-bench-") as tmp:
        pack = Path(tmp, "custom_nodes", "bench_nodes")
        pack.mkdir(parents=True)
        (pack / "__init__.py").write_text(textwrap.dedent(source))
        engine = Engine(home=tmp, builtin_packs=(), cache=cache)
        try:
            failed = [f"{r.name}: {r.error}" for r in engine.pack_results if not r.ok]
            if failed:
                raise RuntimeError(f"benchmark pack failed to load: {failed}")
            yield engine
        finally:
            engine.close()


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds `action` took and its value.

    Earlier runs' garbage is collected first and what survives is frozen for the run, so neither peer pays for
    scanning the other's long-lived objects (compiled graphs, engines) in its own garbage collections.
    """
    gc.collect()
    gc.freeze()
    try:
        started = time.perf_counter()
        value = action()
        return time.perf_counter() - started, value
    finally:
        gc.unfreeze()


def median_seconds(action: Callable[[], Any], *, runs: int, warmup: int = 1,
                   check: Callable[[Any], None] | None = None) -> float:
    """Median wall time of `runs` calls after `warmup` untimed ones; `check` validates every result."""
    for _ in range(warmup):
        value = action()
        if check is not None:
            check(value)
    samples = []
    for _ in range(runs):
        seconds, value = timed(action)
        if check is not None:
            check(value)
        samples.append(seconds)
    return statistics.median(samples)


@dataclass(frozen=True)
class Goal:
    """One pass/fail line of a benchmark."""

    name: str
    passed: bool
    detail: str


def show_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def report_goals(goals: Sequence[Goal], *, check: bool) -> int:
    """Print each goal; the exit status is 1 if one was missed (and checking is on)."""
    for goal in goals:
        mark = "[green]PASS[/]" if goal.passed else "[red]MISS[/]"
        console.print(f"{mark} {goal.name}: {goal.detail}")
    missed = [g for g in goals if not g.passed]
    if missed and check:
        console.print(f"[red]{len(missed)} goal(s) missed[/] (run with --no-check to only print)")
        return 1
    return 0


def parse_args(description: str, *, runs: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=runs, help=f"timed runs per measurement (median; default {runs})")
    parser.add_argument("--no-check", action="store_true", help="only print; exit 0 even if a goal is missed")
    return parser.parse_args()


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("inf")
