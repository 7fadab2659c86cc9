"""`one embeddings serve`: the local embedding model as an OpenAI-compatible HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

embeddings_app = typer.Typer(help="The local embedding model as an OpenAI-compatible API.",
                             no_args_is_help=True)
console = Console()


@embeddings_app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8001,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Serve POST /v1/embeddings and GET /v1/models with all-MiniLM-L6-v2 (384 dimensions)."""
    import uvicorn

    from api.embeddings_server import create_embeddings_app
    from providers.embeddings import EmbedderMisconfigured
    from providers.local_embeddings import LocalMiniLM

    embedder = LocalMiniLM()
    try:
        embedder.load()
    except EmbedderMisconfigured as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    console.print(f"[bold]ONE embeddings[/] ({embedder.spec.model}) on http://{host}:{port}/v1")
    uvicorn.run(create_embeddings_app(embedder), host=host, port=port, log_level="warning")
