"""Project creation's options: one rule, the same answer from the API, the command and the service."""
from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.errors import ApplicationError
from annotation.models import Project
from annotation.services.generation import GenerationOptions
from annotation.services.projects import PROJECT_DEFAULTS, ProjectOptions, project_create
from tests.factories import api_client, make_user

pytestmark = [pytest.mark.django_db]

BAD = [
    ({"responses_per_prompt": 1}, ["--responses-per-prompt", "1"]),
    ({"overlap": 0}, ["--overlap", "0"]),
    ({"gold_rate": 1.0}, ["--gold-rate", "1.0"]),
    ({"lease_seconds": 5}, ["--lease-seconds", "5"]),
    ({"slug": "Not A Slug"}, ["--slug", "Not A Slug"]),
    ({"min_overlap": 4}, ["--min-overlap", "4"]),  # above the overlap (3)
    ({"min_overlap": 0}, ["--min-overlap", "0"]),
    ({"agreement_target": 1.5}, ["--agreement-target", "1.5"]),
    ({"adaptive_rule": "unanimous"}, ["--adaptive-rule", "unanimous"]),
]


@pytest.mark.parametrize(("body", "args"), BAD, ids=[next(iter(body)) for body, _ in BAD])
def test_the_api_and_the_command_refuse_a_bad_setting_with_the_same_message(body, args):
    [field] = body
    api = api_client(make_user("staff", is_staff=True)).post("/api/v1/projects/", {"name": "P", **body}, format="json")
    assert api.status_code == 400
    [message] = api.json()["error"]["fields"][field]
    with pytest.raises(CommandError) as failure:
        call_command("create_project", "P", *args)
    assert failure.value.returncode == 2
    assert f"{field}: {message}" in str(failure.value)
    assert not Project.objects.exists()


def test_a_blank_name_is_refused_by_the_rule_not_by_the_serializer():
    api = api_client(make_user("staff", is_staff=True)).post("/api/v1/projects/", {"name": "   "}, format="json")
    assert api.status_code == 400 and api.json()["error"]["fields"] == {"name": ["must not be empty"]}


def test_a_projects_sampling_defaults_follow_the_generation_runs_rule():
    with pytest.raises(ApplicationError) as caught:
        project_create(name="P", gen_top_p=0, gen_max_new_tokens=40000, gen_seed=2**31)
    run_rule = GenerationOptions(n=2, temperature=1.0, top_p=0, max_new_tokens=40000, seed=2**31).problems()
    assert caught.value.fields == {f"gen_{key}": run_rule[key] for key in ("top_p", "max_new_tokens", "seed")}


def test_the_defaults_are_the_models():
    field_defaults = {f.name: f.get_default() for f in Project._meta.concrete_fields if f.name in PROJECT_DEFAULTS}
    assert field_defaults == PROJECT_DEFAULTS
    assert ProjectOptions.from_input(name="P", overlap=None, lease_seconds=600.0).model_fields() == {
        **PROJECT_DEFAULTS, "lease_seconds": 600}


@pytest.mark.django_db
def test_a_demonstration_project_refuses_adaptive_overlap():
    from annotation.errors import ApplicationError
    from annotation.services.projects import project_create
    from tests.factories import make_user

    owner = make_user("demo-owner-adaptive")
    with pytest.raises(ApplicationError) as refused:
        project_create(name="Written", created_by=owner, task_type="demonstration", overlap=3, min_overlap=2)
    assert "min_overlap" in refused.value.fields
