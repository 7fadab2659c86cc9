"""The OpenAI embedder (real `openai` SDK) against our OpenAI-compatible endpoint over real HTTP,
serving the real local model; plus the endpoint's error shape, retries, and the factory."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from api.embeddings_server import create_embeddings_app
from infra.settings import Settings
from providers.embeddings import EmbedderMisconfigured, EmbedderSpec, EmbeddingError
from providers.factory import build_embedder, embedder_spec
from providers.local_embeddings import MODEL_ID, LocalMiniLM
from providers.openai_embeddings import OpenAIEmbedder
from tests.support.live_server import LiveServer
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


class Scripted:
    """An ASGI app answering the first requests with scripted statuses, then passing them on to
    `app`; it counts every embeddings request it sees."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.statuses: list[int] = []
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/embeddings"):
            self.requests += 1
            if self.statuses:
                status = self.statuses.pop(0)
                body = b'{"error": {"message": "scripted", "type": "server_error", "code": null}}'
                await send({"type": "http.response.start", "status": status, "headers": [
                    (b"content-type", b"application/json"), (b"retry-after-ms", b"10")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def local() -> LocalMiniLM:
    """The real local model, loaded once."""
    model = LocalMiniLM()
    model.load()
    return model


@pytest.fixture(scope="module")
def served(local: LocalMiniLM) -> Iterator[tuple[str, Scripted]]:
    """The local model behind the OpenAI-compatible endpoint: (base URL ending in /v1, the app)."""
    app = Scripted(create_embeddings_app(local))
    with LiveServer(app) as live:
        yield f"{live.url}/v1", app


@pytest.fixture
def base_url(served: tuple[str, Scripted]) -> Iterator[str]:
    """The endpoint's base URL, with a clean script and counter for the test."""
    url, app = served
    app.statuses, app.requests = [], 0
    yield url
    app.statuses = []


@pytest.fixture
def scripted(served: tuple[str, Scripted], base_url: str) -> Scripted:
    """The app in front of the endpoint (script failures, count requests)."""
    return served[1]


TEXTS = ["beginner yoga classes", "yoga lessons for people just starting out",
         "quarterly corporate tax filing", "a much longer text " + "about many things " * 40]


def test_vectors_equal_the_local_model(local: LocalMiniLM, base_url: str) -> None:
    embedder = OpenAIEmbedder(MODEL_ID, base_url=base_url)
    assert embedder.spec == EmbedderSpec(provider="openai", model=MODEL_ID, base_url=base_url)
    assert embedder.dimension == 384  # unknown model: measured with one request
    remote = embedder.embed(TEXTS)
    assert remote.dtype == np.float32 and remote.shape == (4, 384)
    assert ((remote * local.embed(TEXTS)).sum(axis=1) > 0.999).all()
    np.testing.assert_allclose(np.linalg.norm(remote, axis=1), 1.0, atol=1e-5)


def test_large_inputs_are_batched_in_order(local: LocalMiniLM, base_url: str, scripted: Scripted) -> None:
    texts = [f"item {i}: notes on topic {i % 13} and detail {i * 7 % 31}" for i in range(530)]
    embedder = OpenAIEmbedder(MODEL_ID, base_url=base_url, dimensions=384)  # known: no probe
    remote = embedder.embed(texts)
    assert scripted.requests == 3  # 256 + 256 + 18
    assert ((remote * local.embed(texts)).sum(axis=1) > 0.999).all()
    assert embedder.embed([]).shape == (0, 384)


def test_sdk_default_base64_and_explicit_formats(local: LocalMiniLM, base_url: str) -> None:
    client = openai.OpenAI(api_key="unused", base_url=base_url)
    expected = local.embed(TEXTS[:2])
    default = client.embeddings.create(input=TEXTS[:2], model=MODEL_ID)  # the SDK asks for base64
    assert [d.index for d in default.data] == [0, 1] and default.model == MODEL_ID
    assert default.usage.prompt_tokens == default.usage.total_tokens > 0
    np.testing.assert_allclose(np.array([d.embedding for d in default.data]), expected, atol=1e-6)
    floats = client.embeddings.create(input=TEXTS[0], model=MODEL_ID, encoding_format="float")
    np.testing.assert_allclose(floats.data[0].embedding, expected[0], atol=1e-6)
    raw = client.embeddings.create(input=TEXTS[0], model=MODEL_ID, encoding_format="base64")
    decoded = np.frombuffer(base64.b64decode(str(raw.data[0].embedding)), dtype="<f4")
    np.testing.assert_allclose(decoded, expected[0], atol=1e-6)
    assert [m.id for m in client.models.list()] == [MODEL_ID]


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"input": [], "model": MODEL_ID}, 400, "input"),
    ({"input": [""], "model": MODEL_ID}, 400, "input"),
    ({"input": 5, "model": MODEL_ID}, 400, "input"),
    ({"input": [[101, 102]], "model": MODEL_ID}, 400, "input"),
    ({"input": ["x"] * 2049, "model": MODEL_ID}, 400, "input"),
    ({"input": "x"}, 400, "model"),
    ({"input": "x", "model": MODEL_ID, "dimensions": 128}, 400, "dimensions"),
    ({"input": "x", "model": MODEL_ID, "encoding_format": "hex"}, 400, "encoding_format"),
    ({"input": "x", "model": "text-embedding-3-small"}, 404, "model"),
])
def test_bad_requests_get_openai_errors(base_url: str, body: dict[str, Any], status: int,
                                        param: str) -> None:
    response = httpx.post(f"{base_url}/embeddings", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]


def test_invalid_json_gets_an_openai_error(base_url: str) -> None:
    response = httpx.post(f"{base_url}/embeddings", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_rejected_requests_are_misconfiguration(base_url: str, scripted: Scripted) -> None:
    with pytest.raises(EmbedderMisconfigured, match="384-dimensional"):
        OpenAIEmbedder(MODEL_ID, base_url=base_url, dimensions=128).embed(["x"])
    with pytest.raises(EmbedderMisconfigured, match="does not know the embedding model"):
        OpenAIEmbedder("text-embedding-3-small", base_url=base_url).embed(["x"])
    assert scripted.requests == 2  # neither is retried


def test_a_refused_key_is_misconfiguration(base_url: str, scripted: Scripted) -> None:
    scripted.statuses = [401]
    with pytest.raises(EmbedderMisconfigured, match="refused the API key"):
        OpenAIEmbedder(MODEL_ID, api_key="sk-wrong", base_url=base_url, dimensions=384).embed(["x"])
    assert scripted.requests == 1


def test_unavailable_answers_are_retried(local: LocalMiniLM, base_url: str, scripted: Scripted) -> None:
    scripted.statuses = [503, 429]
    embedder = OpenAIEmbedder(MODEL_ID, base_url=base_url, dimensions=384, max_retries=2)
    vectors = embedder.embed(["retried"])
    assert scripted.requests == 3
    assert float(vectors[0] @ local.embed(["retried"])[0]) > 0.999


def test_persistent_failure_is_an_embedding_error(base_url: str, scripted: Scripted) -> None:
    scripted.statuses = [500, 500, 500]
    embedder = OpenAIEmbedder(MODEL_ID, base_url=base_url, dimensions=384, max_retries=1)
    with pytest.raises(EmbeddingError) as caught:
        embedder.embed(["x"])
    assert not isinstance(caught.value, EmbedderMisconfigured)
    assert scripted.requests == 2  # the first try and one retry


def test_a_server_that_is_down_is_an_embedding_error() -> None:
    embedder = OpenAIEmbedder(MODEL_ID, base_url=f"http://127.0.0.1:{free_port()}/v1", dimensions=384,
                              max_retries=2, timeout=2)
    started = time.monotonic()
    with pytest.raises(EmbeddingError, match="retried up to 2 times") as caught:
        embedder.embed(["x"])
    assert not isinstance(caught.value, EmbedderMisconfigured)
    assert time.monotonic() - started > 0.5  # it backed off before giving up


def test_no_key_and_no_base_url_is_misconfiguration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-is-not-used")
    with pytest.raises(EmbedderMisconfigured, match="OPENAI_API_KEY is not set"):
        OpenAIEmbedder()
    with_key = OpenAIEmbedder(api_key="sk-test")
    assert with_key.dimension == 1536 and "sk-test" not in repr(with_key.spec.to_dict())
    assert OpenAIEmbedder("text-embedding-3-large", api_key="sk-test").dimension == 3072
    assert OpenAIEmbedder("text-embedding-3-large", api_key="sk-test", dimensions=256).dimension == 256


# ---- the factory ---------------------------------------------------------------------------------


def test_spec_defaults_per_provider() -> None:
    assert embedder_spec(Settings()) == EmbedderSpec(provider="local", model=MODEL_ID)
    assert embedder_spec(Settings(embedding_dimensions=384, openai_base_url="http://x/v1")) == \
        EmbedderSpec(provider="local", model=MODEL_ID)
    assert embedder_spec(Settings(embedder="openai")) == \
        EmbedderSpec(provider="openai", model="text-embedding-3-small")
    assert embedder_spec(Settings(embedder="openai", embedding_model="text-embedding-3-large",
                                  embedding_dimensions=1024, openai_base_url="http://x/v1",
                                  openai_api_key="sk-secret")) == \
        EmbedderSpec(provider="openai", model="text-embedding-3-large", base_url="http://x/v1",
                     dimensions=1024)


def test_spec_refuses_bad_settings() -> None:
    with pytest.raises(EmbedderMisconfigured, match=r"ONE_EMBEDDER='cohere'.*local, openai"):
        embedder_spec(Settings(embedder="cohere"))
    with pytest.raises(EmbedderMisconfigured, match="ONE_EMBEDDING_MODEL"):
        embedder_spec(Settings(embedding_model="bge-small"))
    with pytest.raises(EmbedderMisconfigured, match="ONE_EMBEDDING_DIMENSIONS"):
        embedder_spec(Settings(embedding_dimensions=256))


def test_build_embedder(local: LocalMiniLM, base_url: str) -> None:
    assert isinstance(build_embedder(embedder_spec(Settings()), Settings()), LocalMiniLM)
    spec = embedder_spec(Settings(embedder="openai", embedding_model=MODEL_ID, openai_base_url=base_url))
    remote = build_embedder(spec, Settings(openai_api_key="sk-unused"))
    assert isinstance(remote, OpenAIEmbedder) and remote.spec == spec
    assert float(remote.embed(["factory"])[0] @ local.embed(["factory"])[0]) > 0.999
    with pytest.raises(EmbedderMisconfigured, match="OPENAI_API_KEY"):
        build_embedder(EmbedderSpec(provider="openai", model="text-embedding-3-small"), Settings())
    with pytest.raises(EmbedderMisconfigured, match="unknown"):
        build_embedder(EmbedderSpec(provider="cohere", model="embed-v4"), Settings())
    with pytest.raises(EmbedderMisconfigured, match="only runs"):
        build_embedder(EmbedderSpec(provider="local", model="bge-small"), Settings())


# ---- the CLI -------------------------------------------------------------------------------------


def test_embeddings_serve_command() -> None:
    port = free_port()
    code = ("import typer; from api.embeddings_cli import embeddings_app; one = typer.Typer(); "
            "one.add_typer(embeddings_app, name='embeddings'); one()")  # as `one embeddings`
    args = [sys.executable, "-c", code, "embeddings", "serve", "--port", str(port)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/v1/models")
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"serve did not start: {proc.communicate()[0].decode()}")
                time.sleep(0.1)
        assert response.json()["data"][0]["id"] == MODEL_ID
        vectors = OpenAIEmbedder(MODEL_ID, base_url=f"http://127.0.0.1:{port}/v1").embed(["cli"])
        assert vectors.shape == (1, 384)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
