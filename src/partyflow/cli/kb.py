"""`partyflow kb create|list|info|ingest|query|delete|export|import`: knowledge bases from the command line.

Every command takes `--json` for scripts. A refused input (an unknown knowledge base, a bad setting, a missing
file) is one line on stderr and exit code 2; an ingest where some files could not be read ingests the rest,
lists the failures and exits 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from partyflow.cli.common import EXIT_FAILED, EXIT_INVALID, HomeOption, home_from, print_json

app = typer.Typer(help="Knowledge bases: ingest documents, search them, and build a knowledge graph.",
                  no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]
NameArg = Annotated[str, typer.Argument(help="knowledge base name", show_default=False)]


def _home(ctx: typer.Context, home: Path | None) -> Any:
    from partyflow.config import Home, resolve_home

    return Home(resolve_home(home_from(ctx, home)))


@contextlib.contextmanager
def _errors(as_json: bool) -> Iterator[None]:
    from partyflow.config import ConfigError
    from partyflow.knowledge import KnowledgeError

    try:
        yield
    except (KnowledgeError, ConfigError, PermissionError) as exc:
        if as_json:
            print_json({"ok": False, "error": str(exc)})
        else:
            Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None


@app.command("create")
def create(
    ctx: typer.Context,
    name: NameArg,
    embedder: Annotated[str, typer.Option(help="hash[:DIM], minilm, transformers:PATH or provider:NAME[/MODEL]")]
    = "hash",
    graph: Annotated[bool, typer.Option("--graph", help="extract a knowledge graph with the LLM")] = False,
    llm: Annotated[str | None, typer.Option(help="provider (config.toml) for extraction, reports and answers")]
    = None,
    llm_model: Annotated[str | None, typer.Option(help="model of that provider (default: its model)")] = None,
    chunk_tokens: Annotated[int, typer.Option(help="tokens per chunk")] = 400,
    overlap_tokens: Annotated[int, typer.Option(help="tokens repeated from the previous chunk")] = 50,
    gleaning: Annotated[int, typer.Option(help="extra extraction passes for missed entities")] = 0,
    graph_store: Annotated[str, typer.Option(help="sqlite, or a graph database mirroring the graph: "
                                                  "falkordb://HOST:PORT/GRAPH, neo4j://HOST:PORT/DB")] = "sqlite",
    vector_store: Annotated[str, typer.Option(help="sqlite, or qdrant://HOST:PORT/COLLECTION")] = "sqlite",
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Create an empty knowledge base in the home (knowledge/NAME/kb.sqlite)."""
    from partyflow.knowledge import KBConfig, KnowledgeBase, KnowledgeError

    with _errors(as_json):
        if graph and not llm:
            raise KnowledgeError("--graph needs --llm PROVIDER to extract entities and relations", where="llm")
        config = KBConfig(embedder=embedder, graph=graph, llm=llm, llm_model=llm_model, chunk_tokens=chunk_tokens,
                          overlap_tokens=overlap_tokens, gleaning=gleaning, graph_store=graph_store,
                          vector_store=vector_store)
        with KnowledgeBase.create(_home(ctx, home), name, config) as kb:
            info = kb.info()
    if as_json:
        print_json({"ok": True, **info})
    else:
        Console().print(f"created knowledge base [bold]{escape(name)}[/] ({escape(info['path'])})", highlight=False)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """List the knowledge bases of the home."""
    from partyflow.knowledge import KnowledgeBase, KnowledgeError, list_bases

    rows = []
    with _errors(as_json):
        where = _home(ctx, home)
        for name in list_bases(where):
            try:
                with KnowledgeBase.open(where, name) as kb:
                    rows.append(kb.info())
            except KnowledgeError as exc:
                rows.append({"name": name, "error": str(exc)})
    if as_json:
        print_json(rows)
        return
    table = Table("name", "documents", "chunks", "entities", "embedder", "graph")
    for row in rows:
        if "error" in row:
            table.add_row(escape(row["name"]), f"[red]{escape(row['error'])}[/]", "", "", "", "")
            continue
        table.add_row(escape(row["name"]), str(row["documents"]), str(row["chunks"]), str(row["entities"]),
                      escape(row["config"]["embedder"]), "yes" if row["config"]["graph"] else "no")
    Console().print(table if rows else "no knowledge bases")


@app.command("info")
def info(
    ctx: typer.Context,
    name: NameArg,
    documents: Annotated[bool, typer.Option("--documents", help="also list the documents")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Show a knowledge base's settings and sizes."""
    from partyflow.knowledge import KnowledgeBase

    with _errors(as_json), KnowledgeBase.open(_home(ctx, home), name) as kb:
        data = kb.info()
        if documents:
            data["document_list"] = kb.documents()
    if as_json:
        print_json(data)
        return
    console = Console(highlight=False)
    console.print(f"[bold]{escape(name)}[/] {escape(data['path'])}")
    for key in ("documents", "chunks", "entities", "relations", "communities", "dimensions"):
        console.print(f"  {key}: {data[key]}")
    for key, value in data["config"].items():
        console.print(f"  {key}: {escape(str(value))}")
    for doc in data.get("document_list", []):
        console.print(f"  - {escape(doc['path'])} ({doc['chunks']} chunks)")


@app.command("ingest")
def ingest(
    ctx: typer.Context,
    name: NameArg,
    paths: Annotated[list[Path], typer.Argument(help="files and folders", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="re-index unchanged files too (LLM results are cached)")]
    = False,
    no_prune: Annotated[bool, typer.Option("--no-prune", help="keep documents whose files are gone")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Add new and changed files, skip unchanged ones, remove deleted ones (one atomic step per document)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from partyflow.knowledge import KnowledgeBase

    with _errors(as_json), KnowledgeBase.open(_home(ctx, home), name) as kb:
        if as_json:
            report = kb.ingest(paths, force=force, prune=not no_prune)
        else:
            with Progress(TextColumn("[bold]ingest[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          TextColumn("{task.description}"), console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("", total=None)

                def show(stage: str, done: int, total: int, detail: str) -> None:
                    bar.update(task, completed=done, total=total, description=escape(Path(detail).name))

                report = kb.ingest(paths, force=force, prune=not no_prune, progress=show)
    if as_json:
        print_json({"ok": not report.failed, **report.as_dict()})
    else:
        console = Console(highlight=False)
        console.print(f"added {len(report.added)}, updated {len(report.updated)}, unchanged "
                      f"{len(report.unchanged)}, removed {len(report.removed)}, failed {len(report.failed)}; "
                      f"{report.chunks} chunks in {report.seconds:.1f}s"
                      + (f"; LLM calls {report.llm.get('llm_calls', 0)}" if report.llm else ""))
        for failure in report.failed:
            Console(stderr=True).print(f"[red]failed:[/] {escape(failure['path'])}: {escape(failure['error'])}",
                                       highlight=False)
    if report.failed:
        raise typer.Exit(EXIT_FAILED)


@app.command("query")
def query(
    ctx: typer.Context,
    name: NameArg,
    question: Annotated[str, typer.Argument(help="what to search for", show_default=False)],
    mode: Annotated[str, typer.Option(help="naive, keyword, hybrid, local, global or mix")] = "hybrid",
    top_k: Annotated[int, typer.Option("--top-k", help="chunks to return")] = 10,
    path: Annotated[str | None, typer.Option("--path", help="only documents matching this glob")] = None,
    answer: Annotated[bool, typer.Option("--answer", help="answer with the knowledge base's LLM, citing [n]")]
    = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Search a knowledge base; shows the cited chunks (and graph facts in graph modes)."""
    from partyflow.knowledge import KnowledgeBase

    with _errors(as_json), KnowledgeBase.open(_home(ctx, home), name) as kb:
        result = kb.search(question, mode=mode, top_k=top_k, path_glob=path, answer=answer)
    if as_json:
        print_json(result.as_dict())
        return
    console = Console(highlight=False)
    if result.answer:
        console.print(escape(result.answer) + "\n")
    for c in result.chunks:
        snippet = " ".join(c.text.split())[:240]
        console.print(f"[bold][{c.n}][/] {escape(c.label())}  [dim]{c.score:.4f}[/]\n    {escape(snippet)}")
    for r in result.relations[:10]:
        console.print(f"  [cyan]{escape(r['source'])} -> {escape(r['target'])}[/]: {escape(r['description'])}")
    for r in result.reports:
        console.print(f"  [magenta]{escape(r['title'])}[/]: {escape(r['summary'][:300])}")
    if not result.chunks:
        console.print("no matches")


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Delete a knowledge base and everything in it."""
    from partyflow.knowledge import delete_base

    if not yes and not as_json and not typer.confirm(f"Delete knowledge base {name!r}?"):
        raise typer.Exit(EXIT_INVALID)
    with _errors(as_json):
        delete_base(_home(ctx, home), name)
    if as_json:
        print_json({"ok": True, "deleted": name})
    else:
        Console().print(f"deleted knowledge base {escape(name)}", highlight=False)


@app.command("export")
def export(
    ctx: typer.Context,
    name: NameArg,
    target: Annotated[Path, typer.Argument(help="a .json file, or a folder for CSV", show_default=False)],
    fmt: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Export the knowledge graph (entities and relations) as JSON or CSV."""
    from partyflow.knowledge import KnowledgeBase

    with _errors(as_json), KnowledgeBase.open(_home(ctx, home), name) as kb:
        try:
            written = kb.export_graph(target, fmt)
        except OSError as exc:
            from partyflow.knowledge import KnowledgeError

            raise KnowledgeError(f"cannot write ({exc.strerror or exc})", where=str(target)) from None
    if as_json:
        print_json({"ok": True, "files": [str(p) for p in written]})
    else:
        Console().print("wrote " + ", ".join(escape(str(p)) for p in written), highlight=False)


@app.command("import")
def import_(
    ctx: typer.Context,
    name: NameArg,
    source: Annotated[Path, typer.Argument(help="a graph .json, a CSV file, or a folder of CSVs", show_default=False)],
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Import a knowledge graph (JSON or CSV) into a knowledge base; importing a file again replaces its facts."""
    from partyflow.knowledge import KnowledgeBase

    with _errors(as_json), KnowledgeBase.open(_home(ctx, home), name) as kb:
        counts = kb.import_graph(source)
        info = kb.info()
    if as_json:
        print_json({"ok": True, "imported": counts, "entities": info["entities"], "relations": info["relations"]})
    else:
        Console().print(f"imported {counts['entities']} entities and {counts['relations']} relations; the graph "
                        f"has {info['entities']} entities and {info['relations']} relations", highlight=False)


@app.command("cypher")
def cypher(
    ctx: typer.Context,
    name: NameArg,
    query: Annotated[str, typer.Argument(help="a Cypher query", show_default=False)],
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Run Cypher on the knowledge base's graph database (knowledge bases created with --graph-store)."""
    from partyflow.knowledge import KnowledgeBase

    with _errors(as_json), KnowledgeBase.open(_home(ctx, home), name) as kb:
        rows = kb.cypher(query)
    if as_json:
        print_json(rows)
        return
    console = Console(highlight=False)
    for row in rows:
        console.print(" | ".join(escape(str(value)) for value in row))
    if not rows:
        console.print("no rows")
