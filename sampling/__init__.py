"""Generation backends: transformers (in the worker process) and OpenAI-compatible HTTP servers."""
from __future__ import annotations

from typing import Any

from .base import (
    GenerationBackend,
    ModelLoadError,
    PromptInput,
    PromptResult,
    Sample,
    SamplingParams,
    TransientBackendError,
)

BACKENDS = ("transformers", "openai")


def get_backend(*, backend: str, model: str, revision: str = "", openai: dict[str, Any] | None = None) -> GenerationBackend:
    """The backend for a run's settings; transformers models are loaded (once per process) here.

    Args:
        openai: the OpenAI backend's keyword arguments besides the model (base_url, api_key,
            concurrency, timeout, max_retries, backoff): the caller reads them from its settings.
    """
    if backend == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend(model=model, revision=revision)
    if backend == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(model=model, **(openai or {}))
    raise ModelLoadError(f"unknown backend '{backend}' (expected one of {', '.join(BACKENDS)})")


__all__ = [
    "BACKENDS",
    "GenerationBackend",
    "ModelLoadError",
    "PromptInput",
    "PromptResult",
    "Sample",
    "SamplingParams",
    "TransientBackendError",
    "get_backend",
]
