"""Generation backends: transformers (in the worker process) and OpenAI-compatible HTTP servers."""
from __future__ import annotations

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


def get_backend(*, backend: str, model: str, revision: str = "", base_url: str = "") -> GenerationBackend:
    """The backend for a run's settings; transformers models are loaded (once per process) here."""
    if backend == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend(model=model, revision=revision)
    if backend == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend.from_settings(model=model, base_url=base_url)
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
