"""How an AI clone answers: the OpenAI SDK's chat completions (`OPENAI_API_KEY` /
`OPENAI_BASE_URL`, model `ONE_CHAT_MODEL`), or, without either, a local responder that answers
from the retrieved passages and says that it is one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from infra.settings import Settings

LOCAL_RESPONDER = "local-responder"
HISTORY_TURNS = 10


@dataclass(frozen=True)
class Conversation:
    """What the clone is asked: its system prompt, the passages retrieved for the question, the
    caller's last turns with it (oldest first) and the new message."""

    system_prompt: str
    temperature: float
    context: Sequence[str]
    history: Sequence[tuple[str, str]]
    """(message, response) pairs."""
    message: str
    model: str | None = None
    """The model to ask (default: the configured `ONE_CHAT_MODEL`)."""

    @classmethod
    def of(cls, properties: Mapping[str, Any], message: str, context: Sequence[str] = (),
           history: Sequence[tuple[str, str]] = (), model: str | None = None) -> Conversation:
        """A conversation with a thing (an AI clone, an agent) whose properties hold its
        `systemPrompt` and `temperature` (default 0.7)."""
        temperature = properties.get("temperature")
        return cls(system_prompt=str(properties.get("systemPrompt") or ""),
                   temperature=float(temperature) if isinstance(temperature, int | float) else 0.7,
                   context=context, history=history, message=message, model=model)

    def messages(self) -> list[dict[str, str]]:
        """The chat messages: system (with the context), the history, the message."""
        system = self.system_prompt or "You are a helpful AI clone of a creator."
        if self.context:
            system += "\n\nAnswer from this knowledge when it helps:\n" + "\n---\n".join(self.context)
        turns: list[dict[str, str]] = [{"role": "system", "content": system}]
        for asked, answered in self.history[-HISTORY_TURNS:]:
            turns += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        return [*turns, {"role": "user", "content": self.message}]


@dataclass(frozen=True)
class ChatReply:
    """The answer, the tokens it used and who wrote it (`openai:<model>` or `local-responder`)."""

    text: str
    tokens_used: int
    source: str


class ChatUnavailable(Exception):
    """The model could not answer (rate limited, timed out, refused)."""


class ChatModel(Protocol):
    """Answers a conversation, whole or streamed."""

    def reply(self, conversation: Conversation) -> ChatReply:
        """The whole answer."""
        ...

    def stream(self, conversation: Conversation) -> Iterator[str | ChatReply]:
        """Pieces of the answer as they come, then the whole `ChatReply`."""
        ...


class OpenAIChat:
    """Chat completions through the official SDK."""

    def __init__(self, client: Any, model: str) -> None:
        self.client = client
        self.model = model

    def reply(self, conversation: Conversation) -> ChatReply:
        """Ask the model once."""
        answer = self._call(conversation, stream=False)
        text = answer.choices[0].message.content or ""
        source = f"openai:{self._model(conversation)}"
        return ChatReply(text, _tokens(answer.usage, conversation, text), source)

    def stream(self, conversation: Conversation) -> Iterator[str | ChatReply]:
        """Forward the model's deltas, then the whole answer with its usage."""
        pieces: list[str] = []
        usage = None
        try:
            for chunk in self._call(conversation, stream=True):
                usage = chunk.usage or usage
                if chunk.choices and chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)
                    yield pieces[-1]
        except Exception as error:
            raise ChatUnavailable(f"the model stopped answering: {error}") from error
        text = "".join(pieces)
        yield ChatReply(text, _tokens(usage, conversation, text), f"openai:{self._model(conversation)}")

    def _model(self, conversation: Conversation) -> str:
        return conversation.model or self.model

    def _call(self, conversation: Conversation, stream: bool) -> Any:
        import openai

        extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if stream else {}
        try:
            return self.client.chat.completions.create(
                model=self._model(conversation), messages=conversation.messages(),
                temperature=conversation.temperature, stream=stream, **extra)
        except openai.APIError as error:
            raise ChatUnavailable(f"the model did not answer: {error}") from error


class LocalResponder:
    """Answers from the retrieved passages, without a model (the embedded default)."""

    def reply(self, conversation: Conversation) -> ChatReply:
        """A reply quoting the passages nearest to the message."""
        if conversation.context:
            quoted = " … ".join(passage[:300] for passage in conversation.context[:3])
            text = f"[Local responder: no AI model is configured.] From what I know: {quoted}"
        else:
            text = "[Local responder: no AI model is configured.] I have no knowledge about that yet."
        words = sum(len(m["content"].split()) for m in conversation.messages()) + len(text.split())
        return ChatReply(text, words, LOCAL_RESPONDER)

    def stream(self, conversation: Conversation) -> Iterator[str | ChatReply]:
        """The reply word by word, then whole."""
        reply = self.reply(conversation)
        words = reply.text.split(" ")
        for index, word in enumerate(words):
            yield word if index == len(words) - 1 else word + " "
        yield reply


def _tokens(usage: Any, conversation: Conversation, text: str) -> int:
    """The model's count, or words when the server reports none."""
    if usage is not None and getattr(usage, "total_tokens", None):
        return int(usage.total_tokens)
    return sum(len(m["content"].split()) for m in conversation.messages()) + len(text.split())


def openai_client(settings: Settings) -> Any | None:
    """The SDK's client when a key or base URL is configured (one retry, `ONE_CHAT_TIMEOUT_SECONDS`),
    else None."""
    if not (settings.openai_api_key or settings.openai_base_url):
        return None
    from openai import OpenAI

    return OpenAI(api_key=settings.openai_api_key or "not-needed", base_url=settings.openai_base_url,
                  timeout=settings.chat_timeout_s, max_retries=1)


def build_chat(settings: Settings) -> ChatModel:
    """OpenAI when a key or base URL is configured, else the local responder."""
    client = openai_client(settings)
    return LocalResponder() if client is None else OpenAIChat(client, settings.chat_model)
