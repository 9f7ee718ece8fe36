"""The openai judge backend against a real HTTP server on 127.0.0.1: logprobs present, absent, malformed,
neither letter, 429, 500, server down; and whole runs through it."""
from __future__ import annotations

import math

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from annotation.models import JudgeComparison, JudgeRun, RunStatus
from sampling.judge import JudgeQuery, OpenAIJudge, judge_messages
from tests.judge.helpers import judged_project
from tests.judge.judge_server import JudgeServer, closed_port_url

QUERY = JudgeQuery(key="q", messages=judge_messages(conversation=[{"role": "user", "content": "Hi"}], principle="Be kind.",
                                                    response_a="Hello!", response_b="Go away."))


def ask(base_url: str, model: str):
    return OpenAIJudge(model=model, base_url=base_url, max_retries=1, backoff=0.01, timeout=10).judge([QUERY])[0]


def test_logprobs_give_a_soft_preference_and_the_request_asks_one_token_with_top_5():
    with JudgeServer() as server:
        answer = ask(server.base_url, "logprobs")
        body = server.bodies[0]
    assert answer.p_a == pytest.approx(math.exp(-0.2) / (math.exp(-0.2) + math.exp(-1.8))) and not answer.hard
    assert body["logprobs"] is True and body["top_logprobs"] == 5 and body["max_tokens"] == 1
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "Response A:\nHello!" in body["messages"][1]["content"] and "Principle: Be kind." in body["messages"][1]["content"]


def test_without_logprobs_the_letter_is_a_hard_label_and_malformed_logprobs_fall_back_to_it():
    with JudgeServer() as server:
        letter, malformed = ask(server.base_url, "letter-b"), ask(server.base_url, "malformed")
    assert (letter.p_a, letter.hard) == (0.0, True)
    assert (malformed.p_a, malformed.hard) == (1.0, True)


def test_neither_letter_fails_with_the_text_and_is_not_retried():
    with JudgeServer() as server:
        answer = ask(server.base_url, "neither")
        calls = server.calls["neither"]
    assert answer.failed and not answer.transient and answer.text == "Maybe" and "neither A nor B: 'Maybe'" in answer.error
    assert calls == 1


@pytest.mark.parametrize(("model", "status"), [("rate-limit", 429), ("broken", 500)])
def test_429_and_500_are_retried_then_reported_transient(model, status):
    with JudgeServer() as server:
        answer = ask(server.base_url, model)
        calls = server.calls[model]
    assert answer.failed and answer.transient and calls == 2  # max_retries=1: two tries
    assert answer.error.startswith("gave up after 2 attempts: HTTP ") and f"HTTP {status}" in answer.error


def test_a_server_that_is_down_is_transient_naming_the_url():
    url = closed_port_url()
    answer = ask(url, "logprobs")
    assert answer.failed and answer.transient and f"cannot reach {url}/chat/completions" in answer.error


@pytest.mark.django_db
def test_a_run_through_the_server_ranks_the_marked_response_first(capsys):
    project, tasks = judged_project("oa1", 2)
    with JudgeServer() as server:
        call_command("judge", "oa1", "--backend", "openai", "--model", "prefers-marker", "--base-url", server.base_url)
    run = JudgeRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED and run.params["base_url"] == server.base_url
    for task, _, marked in tasks:
        assert run.rankings.get(task=task).tiers[0] == [marked]
        for c in JudgeComparison.objects.filter(task=task):
            # With the marker in the pair both orders pick it; without it the server says "B" both times.
            assert c.orders_agree == (marked in (c.response_a_id, c.response_b_id))


@pytest.mark.django_db
@override_settings(OPENAI_MAX_RETRIES=0)
@pytest.mark.parametrize(("model", "named"), [
    ("neither", "could not answer a comparison: the judge answered neither A nor B: 'Maybe'"),
    ("unknown", "HTTP 404"),
    ("down", "cannot reach"),
])
def test_a_judge_that_cannot_answer_is_bad_input_and_nothing_is_written(model, named):
    judged_project("oa2", 1)
    with JudgeServer() as server:
        url = closed_port_url() if model == "down" else server.base_url
        with pytest.raises(CommandError) as info:
            call_command("judge", "oa2", "--backend", "openai", "--model", model, "--base-url", url)
    assert info.value.returncode == 2 and named in str(info.value)
    assert not JudgeRun.objects.exists()


@pytest.mark.django_db
def test_an_api_key_variable_that_is_not_set_is_named():
    judged_project("oa3", 1)
    with pytest.raises(CommandError) as info:
        call_command("judge", "oa3", "--backend", "openai", "--model", "m", "--api-key-env", "NO_SUCH_JUDGE_KEY_VAR")
    assert info.value.returncode == 2 and "the environment variable NO_SUCH_JUDGE_KEY_VAR is not set" in str(info.value)
