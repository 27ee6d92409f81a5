"""`partyflow ray status`: the workers, running prompts and loaded models of a running server's backend.

Asks the server (GET /partyflow/backend) rather than the cluster: the server is the one that knows which prompts
it dispatched, and this works the same for a private local cluster, a joined one and the local backend.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from partyflow.cli.common import EXIT_FAILED, cli_console, print_json

app = typer.Typer(help="The Ray execution backend of a running server.", no_args_is_help=True)

TOKEN_ENV = "PARTYFLOW_API_TOKEN"


@app.command("status")
def status(
    url: Annotated[str, typer.Option("--url", help="the server's address")] = "http://127.0.0.1:8188",
    token: Annotated[str | None, typer.Option("--token", envvar=TOKEN_ENV, show_envvar=True,
                                              help="API token, if the server needs one")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw status as JSON")] = False,
) -> None:
    """Workers (alive, process, node, prompts running and finished), node actors, model actors and the models
    they hold, the shared cache."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(url.rstrip("/") + "/partyflow/backend", headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        cli_console(stderr=True).print(f"[red]cannot reach the server at {url}:[/red] {exc} (is `partyflow serve` "
                                       "running? give its address with --url)")
        raise typer.Exit(EXIT_FAILED) from None
    if response.status_code != 200:
        cli_console(stderr=True).print(f"[red]the server answered {response.status_code}:[/red] "
                                       f"{response.text[:300]}")
        raise typer.Exit(EXIT_FAILED)
    data = response.json()
    if as_json:
        print_json(data)
        return
    render(data)


def render(data: dict[str, Any]) -> None:
    console = cli_console()
    head = f"backend [bold]{data.get('backend')}[/bold]"
    if data.get("backend") == "ray":
        health = "[green]healthy[/green]" if data.get("healthy") else f"[red]unreachable[/red] ({data.get('last_error')})"
        head += f" at {data.get('address')}: {health}; prompts retried after a worker died: {data.get('retried', 0)}"
        driver = data.get("driver")
        if driver:
            head += f"; driver process {driver.get('pid') or '-'} (restarted {driver.get('restarts', 0)} times)"
        if "queue_remaining" in data:
            head += f"; queue: {data['queue_remaining']}"
    console.print(head)
    console.print(f"running prompts: {', '.join(data.get('running', [])) or 'none'}")
    workers = Table("worker", "alive", "pid", "node", "running", "finished", "models")
    for worker in data.get("workers", []):
        workers.add_row(str(worker.get("id")), "yes" if worker.get("alive") else f"no: {worker.get('error', '')}",
                        str(worker.get("pid", "")), str(worker.get("node_id", ""))[:12],
                        ", ".join(worker.get("running", [])), str(worker.get("finished", "")),
                        _models(worker.get("models", [])))
    console.print(workers)
    if data.get("node_actors"):
        actors = Table("node actor", "resources", "pid", "node", "calls", "models")
        for actor in data["node_actors"]:
            actors.add_row(str(actor.get("id", "")), ", ".join(actor.get("resources", {})),
                           str(actor.get("pid", "")), str(actor.get("node_id", ""))[:12], str(actor.get("calls", "")),
                           _models(actor.get("models", [])))
        console.print(actors)
    if data.get("model_actors"):
        models = Table("model actor", "provider", "models", "loads", "calls", "active", "pid", "resources")
        for actor in data["model_actors"]:
            models.add_row(str(actor.get("id", "")), str(actor.get("provider", "")),
                           _models(actor.get("models", [])), str(actor.get("loads", "")), str(actor.get("calls", "")),
                           str(actor.get("active", "")), str(actor.get("pid", "")),
                           ", ".join(f"{k}={v:g}" for k, v in actor.get("resources", {}).items()))
        console.print(models)
    cache = data.get("shared_cache")
    if cache:
        console.print(f"shared cache: {cache.get('entries', 0)} results, {cache.get('bytes', 0) / 2**20:.1f} of "
                      f"{cache.get('max_bytes', 0) / 2**20:.0f} MiB, {cache.get('hits', 0)} hits, "
                      f"{cache.get('evicted', 0)} evicted" if cache.get("alive") else
                      f"shared cache: [red]unreachable[/red] ({cache.get('error')})")
    if data.get("cluster_resources"):
        shown = {k: v for k, v in data["cluster_resources"].items() if not k.startswith("node:")}
        console.print("cluster resources: " + ", ".join(f"{k}={v:g}" for k, v in sorted(shown.items())))


def _models(models: list[dict[str, Any]]) -> str:
    return ", ".join(f"{m['name']} ({m['bytes'] / 2**20:.0f} MiB)" for m in models) or "-"
