"""An OpenAI-compatible embeddings API (`POST /v1/embeddings`, `GET /v1/models`) over any `Embedder`.

Clients written for OpenAI (the `openai` SDK, `OpenAIEmbedder` with `base_url`) work unchanged:
both encoding formats (the SDK asks for base64 unless told otherwise), OpenAI's response shape,
and its error shape `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from providers.embeddings import Embedder, EmbeddingError, Vectors

MAX_INPUTS = 2048
"""Most texts in one request (OpenAI's limit)."""
INPUT_RULE = "'input' must be a non-empty string or array of strings (token arrays are not supported)."


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request (token-id inputs are not supported)."""

    input: str | list[str]
    model: str
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


@runtime_checkable
class CountsTokens(Protocol):
    """An embedder that can say how many tokens it reads (for `usage`)."""

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens read for `texts`."""
        ...


class OpenAIApiError(Exception):
    """Raise from a route to answer in OpenAI's error shape."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def response(self) -> JSONResponse:
        """`{"error": {...}}` with the status."""
        return JSONResponse({"error": {"message": self.message, "type": self.kind, "param": self.param,
                                       "code": self.code}}, status_code=self.status)


def create_embeddings_app(embedder: Embedder) -> FastAPI:
    """The FastAPI app serving `embedder` under the model id `embedder.spec.model`."""
    model_id = embedder.spec.model
    app = FastAPI(title="ONE embeddings", summary=f"OpenAI-compatible embeddings with {model_id}")
    _install_error_handlers(app)

    @app.post("/v1/embeddings")
    def create_embeddings(body: EmbeddingRequest) -> JSONResponse:
        """Embed one text or a list of texts (unit-length float32 vectors)."""
        texts = [body.input] if isinstance(body.input, str) else body.input
        _check(body, texts, model_id, embedder.dimension)
        vectors = embedder.embed(texts)
        encode = _base64 if body.encoding_format == "base64" else _floats
        tokens = (embedder.count_tokens(texts) if isinstance(embedder, CountsTokens)
                  else sum(len(text.split()) for text in texts))
        return JSONResponse({
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": encode(row)}
                     for i, row in enumerate(vectors)],
            "model": model_id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })

    @app.get("/v1/models")
    def list_models() -> JSONResponse:
        """The one model this server embeds with."""
        return JSONResponse({"object": "list", "data": [
            {"id": model_id, "object": "model", "created": 0, "owned_by": "one"}]})

    return app


def _check(body: EmbeddingRequest, texts: list[str], model_id: str, dimension: int) -> None:
    if body.model != model_id:
        raise OpenAIApiError(404, f"The model `{body.model}` does not exist; this server embeds with "
                                  f"`{model_id}`.", "model", "model_not_found")
    if not texts:
        raise OpenAIApiError(400, "'input' must not be an empty array.", "input")
    if len(texts) > MAX_INPUTS:
        raise OpenAIApiError(400, f"'input' has {len(texts)} texts, at most {MAX_INPUTS} are allowed.",
                             "input")
    empty = next((i for i, text in enumerate(texts) if not text), None)
    if empty is not None:
        raise OpenAIApiError(400, f"'input[{empty}]' is an empty string; inputs cannot be empty.",
                             "input")
    if body.dimensions is not None and body.dimensions != dimension:
        raise OpenAIApiError(400, f"`{model_id}` only returns {dimension}-dimensional vectors, not "
                                  f"{body.dimensions}.", "dimensions")


def _floats(row: Vectors) -> list[float]:
    values: list[float] = row.tolist()
    return values


def _base64(row: Vectors) -> str:
    return base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OpenAIApiError)
    async def api_error(_: Request, exc: OpenAIApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return OpenAIApiError(400, "The request body is not valid JSON.").response()
        loc = [str(part) for part in first.get("loc", ()) if part != "body"]
        param = loc[0] if loc else None
        message = (INPUT_RULE if param == "input"
                   else f"Invalid '{param or 'body'}': {first.get('msg', 'invalid request')}.")
        return OpenAIApiError(400, message, param).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return OpenAIApiError(exc.status_code, str(exc.detail)).response()

    @app.exception_handler(EmbeddingError)
    async def embedding_failed(_: Request, exc: EmbeddingError) -> JSONResponse:
        return OpenAIApiError(500, f"Embedding failed: {exc}", kind="server_error").response()
