"""Real responses validated against the OpenAPI schema (issue 14 item 7), with schemathesis.

Every operation of /api/schema/, called as an engineer and as an annotator of a seeded project
(ranking tasks, a finished export, a generation run, a training job, a live lease), with data
schemathesis generates from the schema (valid and invalid), bounded and deterministic: a fixed
seed and a few examples per operation. Each response must have a documented status code, content
type and headers and match its schema, and no request may be a 500.

Path parameters are fixed to the seeded rows, so the calls reach real objects (bad path values are
tests/api/test_bad_input.py's). It all runs in one transaction, rolled back at the end: no commit, so
no fsync per request, and what generated requests start (generation, training) is enqueued on commit,
so never.
"""
from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from annotation.models import GenerationRun, Role, TrainingJob
from annotation.services.assignment import assignment_lease_next
from annotation.services.export import export_snapshot_create
from annotation.services.projects import membership_add, user_create
from tests.factories import make_ranked_project

pytestmark = [pytest.mark.needs_postgres, pytest.mark.slow]

SEED = 20260414
EXAMPLES_PER_OPERATION = 8


@pytest.fixture
def seeded(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the export runs now, in this process
        return _seed()


def _seed() -> dict:
    project, admin = make_ranked_project(name="Conformance", tasks=6, k=3)
    engineer = user_create(username="conf-engineer", password="conf-engineer-pw-1")
    annotator = user_create(username="conf-annotator", password="conf-annotator-pw-1")
    spare = user_create(username="conf-spare", password="conf-spare-pw-1")  # the member the member routes change
    membership_add(project=project, user=engineer.user, role=Role.ENGINEER)
    membership_add(project=project, user=annotator.user, role=Role.ANNOTATOR)
    membership_add(project=project, user=spare.user, role=Role.ANNOTATOR)
    # Rank a little as the admin, so the export and the agreement report have data.
    assignment = assignment_lease_next(project=project, annotator=annotator.user)
    export = export_snapshot_create(project=project, created_by=engineer.user, options={"format": "rankings"})
    run = GenerationRun.objects.create(project=project, backend="transformers", model_name="tiny", status="succeeded",
                                       temperature=0.7, top_p=0.9, max_new_tokens=16, seed=1, finished_at=timezone.now())
    job = TrainingJob.objects.create(project=project, kind="reward", base_model="tiny", created_by=engineer.user, export=export)
    return {
        "tokens": {"engineer": engineer.token, "annotator": annotator.token},
        "parameters": {
            "project": project.slug, "export_id": export.pk, "run_id": run.pk, "job_id": job.pk,
            "assignment_id": assignment.pk, "task_id": assignment.task_id, "user_id": spare.user.pk,
        },
    }


@pytest.fixture
def api_schema(seeded):
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        # Every text field refuses NUL (PostgreSQL cannot store it), as the schema's description says once.
        "generation": {"allow-x00": False},
        "checks": {
            # Valid-looking data is also refused for rules no schema can state (annotators who are not
            # members, ids the assignment did not show, another project's export): 400 or 409 by design.
            "positive_data_acceptance": {"enabled": False},
            # DRF coerces what it can ("5" for an integer, 5 for a string), as documented by DRF; the
            # schema states the types the server returns and validates, not every value it refuses.
            "negative_data_rejection": {"enabled": False},
        },
    })
    # Keep the test's connection (and its transaction) across requests, as Django's test client does:
    # schemathesis calls the WSGI handler directly, whose request signals would close it.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application(), config=config)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _check_operation(operation, mode: GenerationMode, seeded: dict) -> str | None:
    """Run one operation's bounded examples in `mode`; the failure's report, or None."""
    path = {name: value for name, value in seeded["parameters"].items() if "{" + name + "}" in operation.path}
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path)

    @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=strategy)
    def run(case):
        for role in ("engineer", "annotator"):
            case.call_and_validate(headers={"Authorization": f"Token {seeded['tokens'][role]}"})

    try:
        run()
    except Unsatisfiable:
        return None  # nothing to vary in this mode (e.g. no parameters to make invalid)
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001  (collected: one operation's failure hides no other's)
        return f"{operation.method.upper()} {operation.path} [{mode.value}]: {exc}"
    return None


def test_every_response_matches_the_schema(api_schema, seeded):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25
    failures = [report for operation in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                if (report := _check_operation(operation, mode, seeded))]
    assert not failures, "\n\n".join(failures)
