"""`partyflow nodes`: the node classes this home offers, and the packs they came from."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from partyflow.cli.common import EXIT_INVALID, HomeOption, home_from, open_engine, print_json, user_errors

app = typer.Typer(help="Node classes and node packs.", no_args_is_help=True)


@app.command("list")
def list_nodes(
    ctx: typer.Context,
    category: Annotated[str | None, typer.Option(help="only this category (and its subcategories)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    home: HomeOption = None,
) -> None:
    """List node classes by category, and any pack that failed to load."""
    with user_errors():
        engine = open_engine(home_from(ctx, home))
    info = engine.object_info()
    rows = sorted((i["category"], name, i["display_name"], i["python_module"]) for name, i in info.items()
                  if category is None or i["category"] == category or i["category"].startswith(category + "/"))
    failed = [r for r in engine.pack_results if not r.ok]
    engine.close()
    if as_json:
        print_json([{"category": c, "class_type": n, "display_name": d, "module": m} for c, n, d, m in rows])
        return
    table = Table("category", "class_type", "display name", "pack")
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    for result in failed:
        Console(stderr=True).print(f"[red]pack {result.name} failed to load:[/] {result.error}", highlight=False)


@app.command("info")
def info(
    ctx: typer.Context,
    class_type: Annotated[str, typer.Argument(help="the node's class_type", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="print its object_info entry")] = False,
    home: HomeOption = None,
) -> None:
    """Show one node class: inputs with their options, outputs and flags."""
    with user_errors():
        engine = open_engine(home_from(ctx, home))
    entry = engine.object_info(class_type).get(class_type)
    known = list(engine.registry)
    engine.close()
    if entry is None:
        close = [n for n in known if class_type.lower() in n.lower()][:5]
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        Console(stderr=True).print(f"[bold red]error:[/] no node class {class_type!r}{hint}", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    if as_json:
        print_json(entry)
        return
    console = Console()
    console.print(f"[bold]{entry['display_name']}[/] ({class_type}) — {entry['category']}", highlight=False)
    if entry["description"]:
        console.print(entry["description"], highlight=False)
    table = Table("input", "section", "type", "options")
    for section in ("required", "optional"):
        for name, spec in entry["input"].get(section, {}).items():
            kind = spec[0] if isinstance(spec[0], str) else f"COMBO {spec[0][:8]}"
            table.add_row(name, section, str(kind), str(spec[1]) if len(spec) > 1 else "")
    console.print(table)
    outputs = Table("output", "type", "is list")
    for name, kind, is_list in zip(entry["output_name"], entry["output"], entry["output_is_list"], strict=False):
        outputs.add_row(name, kind, "yes" if is_list else "")
    console.print(outputs)
    flags = [f for f in ("output_node", "deprecated", "experimental") if entry.get(f)]
    if flags:
        console.print("flags: " + ", ".join(flags))
