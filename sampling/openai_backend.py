"""Sampling through an OpenAI-compatible chat completions server (vLLM, TGI, llama.cpp, OpenAI).

One request per prompt asks for `n` choices; requests run concurrently up to a limit. 429 and
5xx answers, timeouts and dropped connections are retried with exponential backoff (honouring
Retry-After); a prompt that still fails is reported transient, so the Celery task retries it
later. Other 4xx answers (e.g. a prompt longer than the server's context) fail that prompt with
the server's message.

Settings: OPENAI_BASE_URL, OPENAI_API_KEY, and optionally OPENAI_CONCURRENCY (8),
OPENAI_TIMEOUT_SECONDS (120), OPENAI_MAX_RETRIES (5), OPENAI_BACKOFF_SECONDS (1.0). A run may
record its own base_url in its params.
"""
from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from .base import PromptInput, PromptResult, Sample, SamplingParams, with_system_prompt

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 60.0


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
        backoff: float = 1.0,
    ) -> None:
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff = backoff

    @classmethod
    def from_settings(cls, *, model: str, base_url: str = "") -> OpenAIBackend:
        from django.conf import settings

        return cls(
            model=model,
            base_url=base_url or settings.OPENAI_BASE_URL,
            api_key=settings.OPENAI_API_KEY,
            concurrency=int(getattr(settings, "OPENAI_CONCURRENCY", 8)),
            timeout=float(getattr(settings, "OPENAI_TIMEOUT_SECONDS", 120.0)),
            max_retries=int(getattr(settings, "OPENAI_MAX_RETRIES", 5)),
            backoff=float(getattr(settings, "OPENAI_BACKOFF_SECONDS", 1.0)),
        )

    def generate(self, prompts: list[PromptInput], params: SamplingParams) -> list[PromptResult]:
        timeout = httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        with (
            httpx.Client(timeout=timeout, limits=limits, headers=self.headers) as client,
            ThreadPoolExecutor(max_workers=self.concurrency) as pool,
        ):
            return list(pool.map(lambda p: self._one(client, p, params), prompts))

    def _one(self, client: httpx.Client, prompt: PromptInput, params: SamplingParams) -> PromptResult:
        result = PromptResult(prompt_id=prompt.prompt_id)
        messages = with_system_prompt(prompt.messages, params.system_prompt)
        # Some servers return fewer choices than asked: ask again for the rest.
        for _ in range(params.n):
            missing = params.n - len(result.samples)
            if missing <= 0:
                break
            body: dict[str, Any] = {
                "model": self.model,
                "messages": messages,
                "n": missing,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "max_tokens": params.max_new_tokens,
                "seed": params.seed,
            }
            try:
                data = self._post_with_retries(client, body)
            except _Retryable as exc:
                result.error, result.transient = str(exc), True
                return result
            except ValueError as exc:
                result.error = str(exc)
                return result
            choices = data.get("choices") or []
            usage = data.get("usage") or {}
            tokens = usage.get("completion_tokens")
            per_choice = round(tokens / len(choices)) if isinstance(tokens, int) and choices else None
            for choice in choices[:missing]:
                content = (choice.get("message") or {}).get("content") or ""
                finish = "length" if choice.get("finish_reason") == "length" else "stop"
                result.samples.append(Sample(text=content, finish_reason=finish, token_count=per_choice))
            result.tokens += tokens if isinstance(tokens, int) else 0
            if not choices:
                result.error = "the server answered without choices"
                return result
        return result

    def _post_with_retries(self, client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
        last: _Retryable | None = None
        for attempt in range(self.max_retries + 1):
            if last is not None:
                delay = last.retry_after if last.retry_after is not None else self.backoff * 2 ** (attempt - 1)
                time.sleep(min(MAX_RETRY_AFTER_SECONDS, delay) * (1 + random.random() * 0.1))
            try:
                return self._post(client, body)
            except _Retryable as exc:
                logger.info("openai backend: %s (attempt %d of %d)", exc, attempt + 1, self.max_retries + 1)
                last = exc
        assert last is not None
        raise _Retryable(f"gave up after {self.max_retries + 1} attempts: {last}")

    def _post(self, client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = client.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timeout talking to {self.url}: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"cannot reach {self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code} from {self.url}: {_error_text(response)}", _retry_after(response))
        if response.status_code >= 400:
            raise ValueError(f"HTTP {response.status_code} from {self.url}: {_error_text(response)}")
        try:
            return response.json()
        except ValueError as exc:
            raise ValueError(f"the server at {self.url} did not answer JSON") from exc


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
    except ValueError:
        pass
    return response.text[:500]
