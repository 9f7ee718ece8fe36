"""The OpenAI-compatible backend against a real chat-completions HTTP server started on 127.0.0.1."""
from __future__ import annotations

from collections import Counter

import pytest
from django.test import override_settings

from annotation.models import GenerationRun, RankingTask, Response, RunStatus
from annotation.services.generation import generation_run_create
from sampling import PromptInput, SamplingParams
from sampling.openai_backend import OpenAIBackend
from tests.factories import add_prompts, make_project
from tests.generation.chat_server import ChatServer
from tests.generation_helpers import responses_per_prompt

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def server():
    with ChatServer() as running:
        yield running


FAST_RETRIES = {"OPENAI_BACKOFF_SECONDS": 0.01, "OPENAI_MAX_RETRIES": 3, "OPENAI_API_KEY": "sk-test-key"}


@override_settings(**FAST_RETRIES)
def test_openai_run_gets_n_choices_per_prompt_and_retries_429_and_500(server, django_capture_on_commit_callbacks):
    project = make_project("Served", responses_per_prompt=3)
    add_prompts(project, ["plain question", "rate-limit me", "flaky server", "stingy server"])
    with django_capture_on_commit_callbacks(execute=True):
        run = generation_run_create(project=project, backend="openai", model="served-7b", params={"base_url": server.base_url}, seed=3)
    run.refresh_from_db()

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert set(responses_per_prompt(run).values()) == {3}
    assert RankingTask.objects.filter(project=project).count() == 4
    assert server.calls["rate-limit me"] == 2 and server.calls["flaky server"] == 2
    assert server.calls["stingy server"] == 3  # asked again for the missing choices
    assert server.calls["plain question"] == 1
    first = server.bodies[0]
    assert (first["model"], first["n"], first["temperature"], first["top_p"], first["seed"]) == ("served-7b", 3, 0.8, 0.95, 3)
    assert first["max_tokens"] == project.gen_max_new_tokens
    assert all(h["Authorization"] == "Bearer sk-test-key" for h in server.headers)
    assert Counter(Response.objects.filter(run=run).values_list("finish_reason", flat=True)) == {"stop": 6, "length": 6}
    assert run.params["base_url"] == server.base_url and run.model_revision == ""
    assert run.tokens_count == 4 * 15


@override_settings(**FAST_RETRIES)
def test_a_prompt_the_server_refuses_fails_with_its_message_and_the_run_is_partial(server, django_capture_on_commit_callbacks):
    project = make_project("Refused", responses_per_prompt=2)
    add_prompts(project, ["fine prompt", "much too long prompt"])
    with django_capture_on_commit_callbacks(execute=True):
        run = generation_run_create(project=project, backend="openai", model="m", params={"base_url": server.base_url})
    run.refresh_from_db()

    assert run.status == RunStatus.PARTIAL
    assert (run.prompts_done, run.prompts_failed) == (1, 1)
    assert "maximum context length is 8 tokens" in run.error
    assert server.calls["much too long prompt"] == 1  # a 400 is not retried
    failed = list(run.summary["failed_prompts"].values())
    assert len(failed) == 1 and "HTTP 400" in failed[0]


@override_settings(**FAST_RETRIES)
def test_a_server_that_stays_down_is_retried_then_the_run_fails_with_the_reason(server, django_capture_on_commit_callbacks):
    project = make_project("Down", responses_per_prompt=2)
    add_prompts(project, ["server is down"])
    with django_capture_on_commit_callbacks(execute=True):
        run = generation_run_create(project=project, backend="openai", model="m", params={"base_url": server.base_url})
    run = GenerationRun.objects.get(pk=run.pk)

    assert run.status == RunStatus.FAILED
    assert "HTTP 503" in run.error and "overloaded" in run.error
    # Each of the task's 6 attempts made the backend's 4 tries.
    assert server.calls["server is down"] == 6 * 4
    assert not Response.objects.filter(run=run).exists()


def test_an_unreachable_server_is_a_transient_failure_with_the_reason():
    backend = OpenAIBackend(model="m", base_url="http://127.0.0.1:9/v1", max_retries=1, backoff=0.01, timeout=2)
    [result] = backend.generate([PromptInput(1, [{"role": "user", "content": "hi"}])], SamplingParams(2, 0.7, 1.0, 8, 0))
    assert result.transient and "cannot reach http://127.0.0.1:9/v1/chat/completions" in result.error


def test_requests_stay_within_the_concurrency_limit():
    with ChatServer(delay=0.05) as server:
        backend = OpenAIBackend(model="m", base_url=server.base_url, concurrency=3)
        prompts = [PromptInput(i, [{"role": "user", "content": f"question {i}"}]) for i in range(12)]
        params = SamplingParams(n=2, temperature=0.5, top_p=1.0, max_new_tokens=8, seed=0, system_prompt="Be kind.")
        results = backend.generate(prompts, params)
    assert sorted(r.prompt_id for r in results) == list(range(12))
    assert all(len(r.samples) == 2 and not r.error for r in results)
    assert server.max_in_flight == 3
    assert all(body["messages"][0] == {"role": "system", "content": "Be kind."} for body in server.bodies)
