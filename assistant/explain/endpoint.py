"""The OpenAI-compatible endpoint: a chat model from the settings, streamed within a wall-clock deadline.

Retries (with backoff, on rate limits and transient failures, only before the first piece of text) are
tenacity's, told apart by the openai and httpx error classes; the openai client's own retries are off so that
every attempt counts toward one deadline. The deadline is wall-clock time for the whole answer: an endpoint
that trickles a byte now and then, which resets the read timeout, still gives up at the deadline, and the
caller falls back to the offline answer.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator

import httpx
import openai
from langchain_core.language_models import BaseChatModel
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential

from ..errors import LLMUnavailable
from ..settings import LLMSettings

try:  # openai 3.6x moved from httpx to its fork httpx2; a stream broken off raises the transport's own errors
    import httpx2

    _TRANSPORTS = (httpx, httpx2)
except ImportError:
    _TRANSPORTS = (httpx,)


def _each(name: str) -> tuple[type, ...]:
    return tuple(getattr(module, name) for module in _TRANSPORTS)


TRANSIENT = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError, *_each("TransportError"))
REASONS = (  # most specific first: APITimeoutError is an APIConnectionError
    (openai.APITimeoutError, "the LLM endpoint did not answer in time"),
    (_each("TimeoutException"), "the LLM endpoint did not answer in time"),
    (openai.APIConnectionError, "the LLM endpoint could not be reached"),
    (_each("ConnectError"), "the LLM endpoint could not be reached"),
    (openai.RateLimitError, "the LLM endpoint is rate-limiting requests"),
    (openai.AuthenticationError, "the LLM endpoint rejected the API key"),
    (openai.NotFoundError, "the LLM endpoint does not know the configured model"),
    (openai.InternalServerError, "the LLM endpoint returned a server error"),
    (_each("RemoteProtocolError"), "the LLM endpoint broke off its answer"),
)


def llm_configured() -> bool:
    return bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))


def make_chat_model(settings: LLMSettings) -> BaseChatModel:
    """ChatOpenAI on the openai client's own variables (OPENAI_API_KEY, OPENAI_BASE_URL)."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=settings.model,
        temperature=settings.temperature,
        api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",  # local servers ignore the key
        base_url=os.environ.get("OPENAI_BASE_URL") or None,
        # (connect, read, write, pool) as a plain tuple: both httpx and httpx2 (newer openai clients) take it.
        timeout=(settings.connect_timeout_s, settings.read_timeout_s, settings.read_timeout_s, settings.connect_timeout_s),
        max_retries=0,  # retries are tenacity's here, inside the answer's deadline
        max_tokens=settings.answer_tokens,
        streaming=True,
    )


def _chain(error: BaseException | None):
    """The error and its causes (langchain wraps openai's errors)."""
    for _ in range(5):
        if error is None:
            return
        yield error
        error = error.__cause__ or error.__context__


def retryable(error: BaseException) -> bool:
    return any(isinstance(e, TRANSIENT) for e in _chain(error))


def describe_failure(error: BaseException) -> str:
    """A short reason for the notice; never the key, never a traceback."""
    for e in _chain(error):
        for kind, reason in REASONS:
            if isinstance(e, kind):
                return reason
    return f"the LLM endpoint failed ({type(error).__name__})"


_DONE = object()


class LLMWriter:
    def __init__(self, settings: LLMSettings, chat_model: BaseChatModel | None = None):
        self.settings = settings
        self._chat_model = chat_model

    @property
    def chat_model(self) -> BaseChatModel:
        if self._chat_model is None:
            self._chat_model = make_chat_model(self.settings)
        return self._chat_model

    @property
    def model_name(self) -> str:
        return getattr(self.chat_model, "model_name", None) or self.settings.model

    def stream(self, messages: list) -> Iterator[str]:
        """Text pieces as they arrive; LLMUnavailable when the endpoint fails or the deadline passes."""
        deadline = time.monotonic() + self.settings.deadline_s
        pieces: queue.Queue = queue.Queue()
        started = threading.Event()

        def attempt() -> None:
            for chunk in self.chat_model.stream(messages):
                piece = chunk.content if isinstance(chunk.content, str) else ""
                if piece:
                    started.set()
                    pieces.put(piece)

        def produce() -> None:
            retrying = Retrying(
                stop=stop_after_attempt(self.settings.max_retries + 1) | stop_after_delay(self.settings.deadline_s),
                wait=wait_exponential(multiplier=self.settings.backoff_s, min=self.settings.backoff_s),
                retry=retry_if_exception(lambda e: retryable(e) and not started.is_set()),
                reraise=True,
            )
            try:
                retrying(attempt)
                pieces.put(_DONE)
            except BaseException as error:  # handed to the reader, which raises LLMUnavailable
                pieces.put(error)

        # The request runs in its own thread so that the reader can stop waiting at the deadline, whatever the
        # endpoint does (a hang, or bytes trickling in just within the read timeout).
        threading.Thread(target=produce, name="llm-request", daemon=True).start()
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = pieces.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise LLMUnavailable(f"the LLM endpoint did not finish within {self.settings.deadline_s:g} s") from None
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise LLMUnavailable(describe_failure(item)) from None
            yield item
