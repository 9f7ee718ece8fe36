"""What a generation backend takes and returns, and the errors it may raise.

A backend turns a list of prompts (chat messages) into `n` sampled responses each. It knows
nothing about the database: annotation.services.generation decides what is missing, calls the
backend, and writes the results idempotently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class PromptInput:
    prompt_id: int
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings of a run. `extra` carries backend options (e.g. min_new_tokens, base_url)."""

    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    system_prompt: str = ""
    batch_size: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    text: str
    finish_reason: str  # "stop" (end of turn) or "length" (max_new_tokens reached)
    token_count: int | None  # generated tokens, stop token included; None when the server did not say


@dataclass
class PromptResult:
    """The samples of one prompt, or why it has none.

    `transient` errors (rate limits, server errors after the backend's own retries) are worth
    retrying later; other errors are final for this prompt.
    """

    prompt_id: int
    samples: list[Sample] = field(default_factory=list)
    prompt_truncated: bool = False
    error: str = ""
    transient: bool = False
    tokens: int = 0  # generated tokens for this prompt (all samples), for throughput figures


class GenerationBackend(Protocol):
    name: str

    def generate(self, prompts: list[PromptInput], params: SamplingParams) -> list[PromptResult]:
        """One PromptResult per prompt, in any order."""
        ...


class ModelLoadError(Exception):
    """The model cannot be loaded (bad path, no weights, changed weights): the run fails."""


class TransientBackendError(Exception):
    """The whole batch hit a temporary problem; the task retries it with backoff."""


def with_system_prompt(messages: list[dict[str, str]], system_prompt: str) -> list[dict[str, str]]:
    """The run's system prompt first, unless the prompt brings its own."""
    if system_prompt and not (messages and messages[0].get("role") == "system"):
        return [{"role": "system", "content": system_prompt}, *messages]
    return list(messages)
