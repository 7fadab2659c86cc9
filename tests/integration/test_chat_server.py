"""The local OpenAI-compatible chat server driven by the real `openai` SDK over real HTTP: plain and
streamed completions, retries of a 429, timeouts, and the project's `OpenAIAnalyst` against it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from providers.analysis import OpenAIAnalyst
from tests.support.chat_server import ChatServer, count_words

MODEL = "gpt-test-mini"


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    """A fresh chat server per test."""
    with ChatServer() as server:
        yield server


def sdk(chat: ChatServer, **options: Any) -> OpenAI:
    """The official client pointed at `chat`."""
    return OpenAI(api_key="test-key", base_url=chat.base_url, **options)


def test_plain_completion_has_content_and_usage(chat: ChatServer) -> None:
    answer = sdk(chat).chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "What is ONE?"}])
    assert answer.object == "chat.completion"
    assert answer.model == MODEL
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == "Answer to: What is ONE?"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (5, 5)
    assert answer.usage.total_tokens == 10
    assert chat.requests == [{"model": MODEL, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is ONE?"}]}]


def test_streamed_completion_assembles_the_responder_text(chat: ChatServer) -> None:
    text = "Three opportunities:  courses, communities\nand clones."
    chat.responder = lambda messages: text
    stream = sdk(chat).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Go"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    pieces = [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
    assert "".join(pieces) == text
    assert len(pieces) > 3
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (1, count_words(text))
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chat.requests[0]["stream"] is True


def test_stream_without_include_usage_sends_no_usage_chunk(chat: ChatServer) -> None:
    chunks = list(sdk(chat).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi there"}], stream=True))
    assert all(chunk.choices for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "Answer to: Hi there"


def test_a_429_is_retried_by_the_sdk(chat: ChatServer) -> None:
    chat.fail_next(1, status=429)
    answer = sdk(chat, max_retries=1).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "again"}])
    assert answer.choices[0].message.content == "Answer to: again"
    assert len(chat.requests) == 2


def test_without_retries_the_429_surfaces_as_rate_limit_error(chat: ChatServer) -> None:
    chat.fail_next(1)
    with pytest.raises(openai.RateLimitError) as raised:
        sdk(chat, max_retries=0).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "now"}])
    assert raised.value.status_code == 429
    assert raised.value.code == "rate_limit_exceeded"
    assert raised.value.response.headers["retry-after"] == "0"
    assert len(chat.requests) == 1
    # The fault is consumed: the next request is answered.
    answer = sdk(chat, max_retries=0).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "now"}])
    assert answer.choices[0].message.content == "Answer to: now"


def test_faults_are_consumed_in_order(chat: ChatServer) -> None:
    chat.fail_next(1, status=500)
    chat.fail_next(1, status=503)
    client = sdk(chat, max_retries=0)
    for status in (500, 503):
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
        assert raised.value.status_code == status
    assert client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}]).choices[0].message.content


def test_a_stall_beyond_the_timeout_raises_api_timeout_error(chat: ChatServer) -> None:
    chat.stall_next(1, seconds=3)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        sdk(chat, max_retries=0, timeout=0.5).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "slow"}])
    assert time.monotonic() - started < 2.5
    # The stall is consumed: the next request is answered at once.
    answer = sdk(chat, max_retries=0, timeout=2).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "fast"}])
    assert answer.choices[0].message.content == "Answer to: fast"


def test_models_lists_the_server_model(chat: ChatServer) -> None:
    assert [model.id for model in sdk(chat).models.list()] == [chat.model]


def test_bad_requests_get_openai_shaped_errors(chat: ChatServer) -> None:
    response = httpx.post(f"{chat.base_url}/chat/completions", content=b"{not json", timeout=5)
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    with pytest.raises(openai.BadRequestError):
        sdk(chat, max_retries=0).chat.completions.create(model=MODEL, messages=[])


def test_openai_analyst_against_the_server(chat: ChatServer) -> None:
    chat.responder = lambda messages: "  Strengths: calm teachers. Next step: a beginner course.  "
    analyst = OpenAIAnalyst(sdk(chat, max_retries=0, timeout=5), MODEL)
    analysis = analyst.analyse({"business": "Yoga studio", "industry": "wellness", "goals": ""})
    assert analysis.source == f"openai:{MODEL}"
    assert analysis.text == "Strengths: calm teachers. Next step: a beginner course."
    [request] = chat.requests
    assert request["model"] == MODEL
    system, user = request["messages"]
    assert system["role"] == "system" and "business coach" in system["content"]
    assert user == {"role": "user", "content": "business: Yoga studio\nindustry: wellness"}


def test_openai_analyst_with_the_default_responder(chat: ChatServer) -> None:
    analysis = OpenAIAnalyst(sdk(chat, max_retries=0, timeout=5), MODEL).analyse({"business": "Yoga studio"})
    assert analysis.text == "Answer to: business: Yoga studio"
    assert analysis.source == f"openai:{MODEL}"
