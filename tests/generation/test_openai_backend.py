"""The OpenAI-compatible backend on the `openai` SDK: what the SDK is asked, and what stays Django-free."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sampling import PromptInput, SamplingParams, get_backend
from sampling.openai_backend import OpenAIBackend
from tests.generation.chat_server import ChatServer

ROOT = Path(__file__).resolve().parents[2]


def test_without_an_api_key_no_authorization_header_is_sent():
    with ChatServer() as server:
        backend = OpenAIBackend(model="m", base_url=server.base_url)
        [result] = backend.generate([PromptInput(1, [{"role": "user", "content": "hello"}])], SamplingParams(2, 0.7, 1.0, 8, 0))
    assert not result.error and len(result.samples) == 2
    assert [h.get("Authorization") for h in server.headers] == [None]


def test_the_sdk_retries_a_rate_limit_itself_and_gives_up_transiently_on_a_server_that_stays_down():
    with ChatServer() as server:
        backend = get_backend(backend="openai", model="m",
                              openai={"base_url": server.base_url, "api_key": "k", "max_retries": 2, "backoff": 0.01})
        prompts = [PromptInput(1, [{"role": "user", "content": "rate-limit once"}]),
                   PromptInput(2, [{"role": "user", "content": "server is down"}])]
        results = {r.prompt_id: r for r in backend.generate(prompts, SamplingParams(1, 0.7, 1.0, 8, 0))}
    assert not results[1].error and server.calls["rate-limit once"] == 2
    assert results[2].transient and server.calls["server is down"] == 3  # max_retries=2: three tries
    assert results[2].error.startswith("gave up after 3 attempts: HTTP 503 from ") and "overloaded" in results[2].error


def test_a_refused_prompt_is_a_final_failure_with_the_servers_message():
    with ChatServer() as server:
        backend = OpenAIBackend(model="m", base_url=server.base_url, backoff=0.01)
        [result] = backend.generate([PromptInput(1, [{"role": "user", "content": "too long"}])], SamplingParams(1, 0.7, 1.0, 8, 0))
    assert not result.transient and server.calls["too long"] == 1
    assert result.error.endswith("/v1/chat/completions: This model's maximum context length is 8 tokens")


def test_the_sampling_package_imports_nothing_from_django():
    code = (
        "import sys, sampling, sampling.base, sampling.openai_backend, sampling.transformers_backend\n"
        "found = sorted(m for m in sys.modules if m == 'django' or m.startswith(('django.', 'annotation', 'config')))\n"
        "print(found); sys.exit(1 if found else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
