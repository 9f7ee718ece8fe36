"""Sampling through an OpenAI-compatible chat completions server (vLLM, TGI, llama.cpp, OpenAI), with the `openai` SDK.

One request per prompt asks for `n` choices; requests run concurrently up to `concurrency`.
Retries are the SDK's own: 408, 409, 429 and 5xx answers, timeouts and dropped connections are
retried `max_retries` times with exponential backoff and jitter, honouring Retry-After. A prompt
that still fails is reported transient, and the Celery task (workers.tasks.generation) retries the
batch later with its own, longer backoff (docs/generation.md, "Retries"). Other 4xx answers (e.g. a
prompt longer than the server's context) fail that prompt with the server's message.

No Django here: the caller (annotation.services.generation) passes base_url, api_key, timeout and
retries from the settings.

Example:
    >>> backend = OpenAIBackend(model="Qwen/Qwen2.5-0.5B-Instruct", base_url="http://127.0.0.1:8001/v1")
    >>> backend.generate([PromptInput(1, [{"role": "user", "content": "Hi"}])],
    ...                  SamplingParams(n=4, temperature=0.8, top_p=0.95, max_new_tokens=64, seed=0))
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai

from .base import PromptInput, PromptResult, Sample, SamplingParams, with_system_prompt

logger = logging.getLogger(__name__)

# The SDK's first backoff delay (openai._constants.INITIAL_RETRY_DELAY); the delays it computes are
# scaled by backoff / SDK_INITIAL_DELAY, so `backoff` sets the first one and the curve stays the SDK's.
SDK_INITIAL_DELAY = 0.5
# Answers worth retrying later (after the SDK's own retries ran out): the server may recover.
TRANSIENT_STATUS = frozenset({408, 409, 429})


class _Client(openai.OpenAI):
    """The SDK's client with its backoff scaled (the SDK has no public knob for the delay itself).

    A server-directed delay (Retry-After) is kept as the SDK computed it.
    """

    backoff_scale = 1.0

    def _calculate_retry_timeout(self, remaining_retries: int, options: Any, response_headers: Any = None) -> float:
        delay = super()._calculate_retry_timeout(remaining_retries, options, response_headers)
        retry_after = self._parse_retry_after_header(response_headers)
        if retry_after is not None and delay == retry_after:
            return delay
        return delay * self.backoff_scale


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key: str = "",
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = SDK_INITIAL_DELAY,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"  # for error messages
        self.api_key = api_key
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff = max(0.0, backoff)

    def _client(self) -> _Client:
        # One client per batch, shared by the threads (the SDK's client is thread-safe); the pool's
        # size bounds the connections in use, so the SDK's connection limits need no change.
        client = _Client(
            base_url=self.base_url,
            # The SDK insists on a key; without one the Authorization header is left out per request.
            api_key=self.api_key or "unused",
            max_retries=self.max_retries,
            timeout=openai.Timeout(self.timeout, connect=min(10.0, self.timeout)),
        )
        client.backoff_scale = self.backoff / SDK_INITIAL_DELAY
        return client

    def generate(self, prompts: list[PromptInput], params: SamplingParams) -> list[PromptResult]:
        with self._client() as client, ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda p: self._one(client, p, params), prompts))

    def _one(self, client: _Client, prompt: PromptInput, params: SamplingParams) -> PromptResult:
        result = PromptResult(prompt_id=prompt.prompt_id)
        messages = with_system_prompt(prompt.messages, params.system_prompt)
        extra_headers = None if self.api_key else {"Authorization": openai.Omit()}
        # Some servers return fewer choices than asked: ask again for the rest.
        for _ in range(params.n):
            missing = params.n - len(result.samples)
            if missing <= 0:
                break
            try:
                completion = client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    n=missing,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_tokens=params.max_new_tokens,
                    seed=params.seed,
                    extra_headers=extra_headers,
                )
            except openai.OpenAIError as exc:
                result.error, result.transient = self._failure(exc)
                return result
            choices = completion.choices or []
            tokens = completion.usage.completion_tokens if completion.usage is not None else None
            per_choice = round(tokens / len(choices)) if isinstance(tokens, int) and choices else None
            for choice in choices[:missing]:
                content = (choice.message.content if choice.message is not None else None) or ""
                finish = "length" if choice.finish_reason == "length" else "stop"
                result.samples.append(Sample(text=content, finish_reason=finish, token_count=per_choice))
            result.tokens += tokens if isinstance(tokens, int) else 0
            if not choices:
                result.error = "the server answered without choices"
                return result
        return result

    def _failure(self, exc: openai.OpenAIError) -> tuple[str, bool]:
        """(reason, transient) for a request that failed after the SDK's retries."""
        if isinstance(exc, openai.APITimeoutError):
            reason, transient = f"timeout talking to {self.url}", True
        elif isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            reason, transient = f"cannot reach {self.url}: {type(cause).__name__}: {cause}", True
        elif isinstance(exc, openai.APIStatusError):
            reason = f"HTTP {exc.status_code} from {self.url}: {_error_text(exc)}"
            transient = exc.status_code in TRANSIENT_STATUS or exc.status_code >= 500
        else:  # e.g. an answer that is not a chat completion
            reason, transient = f"bad answer from {self.url}: {type(exc).__name__}: {exc}", False
        if transient:
            reason = f"gave up after {self.max_retries + 1} attempts: {reason}"
        return reason, transient


def _error_text(exc: openai.APIStatusError) -> str:
    """The server's own message (OpenAI-style `{"error": {"message": ...}}`), else its text."""
    body = exc.body
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:500]
    if isinstance(body, str) and body:
        return body[:500]
    try:
        return exc.response.text[:500]
    except Exception:  # noqa: BLE001  (a streamed body may be unreadable; the status says enough)
        return exc.message[:500]
