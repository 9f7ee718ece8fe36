"""A generation run's options: one rule, the same answer from the API, the command and round two's endpoint."""
from __future__ import annotations

import math

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.errors import ApplicationError
from annotation.models import GenerationRun, Role
from annotation.services.generation import MAX_BATCH_SIZE, GenerationOptions, generation_run_create
from annotation.services.validation import is_int, is_number
from api.serializers.training import TrainingGenerateInputSerializer
from tests.factories import add_prompts, api_client, make_project, make_user

pytestmark = [pytest.mark.django_db]

# (API body, command arguments) with the same bad setting.
BAD = [
    ({"n": 0}, ["--n", "0"]),
    ({"n": 65}, ["--n", "65"]),
    ({"temperature": -1}, ["--temperature", "-1"]),
    ({"top_p": 0}, ["--top-p", "0"]),
    ({"max_new_tokens": 40000}, ["--max-new-tokens", "40000"]),
    ({"seed": 2**31}, ["--seed", str(2**31)]),
    ({"batch_size": MAX_BATCH_SIZE + 1}, ["--batch-size", str(MAX_BATCH_SIZE + 1)]),
    ({"backend": "tgi"}, ["--backend", "tgi"]),
]


@pytest.fixture
def project():
    project = make_project("Options", members={make_user("eng"): Role.ENGINEER})
    add_prompts(project, ["one prompt"])
    return project


@pytest.mark.parametrize(("body", "args"), BAD, ids=[next(iter(body)) for body, _ in BAD])
def test_the_api_and_the_command_refuse_a_bad_setting_with_the_same_message(project, body, args):
    [field] = body
    api = api_client(project.memberships.get(role=Role.ENGINEER).user).post(
        f"/api/v1/projects/{project.pk}/generation-runs/", body, format="json"
    )
    assert api.status_code == 400
    [message] = api.json()["error"]["fields"][field]
    with pytest.raises(CommandError) as failure:
        call_command("generate", project.slug, *args)
    assert failure.value.returncode == 2
    assert f"--{field.replace('_', '-')}: {message}" in str(failure.value)
    assert not GenerationRun.objects.exists()


def test_the_batch_size_cap_is_the_generation_rule_for_a_training_jobs_round_two_too(project):
    # Round two's endpoint once capped batch_size at 256 while runs allowed 1024: one cap now.
    serializer = TrainingGenerateInputSerializer(data={"batch_size": MAX_BATCH_SIZE})
    assert serializer.is_valid(), serializer.errors
    assert GenerationOptions(batch_size=MAX_BATCH_SIZE).with_defaults(project).problems() == {}
    with pytest.raises(ApplicationError) as caught:
        generation_run_create(project=project, batch_size=MAX_BATCH_SIZE + 1, enqueue=False)
    assert caught.value.fields == {"batch_size": [f"must be an integer from 1 to {MAX_BATCH_SIZE}"]}


def test_options_take_the_projects_defaults_and_report_every_problem_at_once(project):
    filled = GenerationOptions().with_defaults(project)
    assert (filled.n, filled.temperature, filled.top_p, filled.max_new_tokens, filled.seed) == (
        project.responses_per_prompt, project.gen_temperature, project.gen_top_p, project.gen_max_new_tokens, project.gen_seed)
    problems = GenerationOptions(n=True, temperature=math.nan, top_p=1.5, model=7).with_defaults(project).problems()
    assert set(problems) == {"n", "temperature", "top_p", "model"}
    with pytest.raises(TypeError):
        generation_run_create(project=project, colour="red")


def test_what_counts_as_an_integer_and_a_number():
    assert is_int(3) and not is_int(True) and not is_int(3.0) and not is_int("3")
    assert is_number(0.5) and is_number(2) and not is_number(False)
    assert not is_number(math.inf) and not is_number(math.nan) and not is_number("0.5")
