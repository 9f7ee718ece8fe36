"""`train SLUG --kind reward|dpo|sft|kto --wait` on the demo project with no --export: it exports the kind's format first."""
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from annotation.models import ExportSnapshot, JobStatus, Project, TrainingJob
from annotation.services.assignment import assignment_lease_next, assignment_payload
from annotation.services.ranking import ranking_submit

pytestmark = pytest.mark.django_db


def _rank_everything(project: Project) -> int:
    """Each demo annotator ranks every task: longer responses first (a stand-in for real judgement)."""
    submitted = 0
    for username in ("annotator1", "annotator2", "annotator3"):
        user = get_user_model().objects.get(username=username)
        while True:
            assignment = assignment_lease_next(project=project, annotator=user)
            if not hasattr(assignment, "task_id"):
                break
            shown = assignment_payload(assignment=assignment)["responses"]
            tiers = [[r["id"]] for r in sorted(shown, key=lambda r: -len(r["content"]))]
            ranking_submit(assignment_id=assignment.pk, annotator=user, ranking=tiers, duration_seconds=12.0)
            submitted += 1
    return submitted


def test_train_on_a_fresh_demo_says_to_rank_first_then_trains_once_ranked(tiny_model_path):
    call_command("demo", "--no-serve", stdout=StringIO())
    project = Project.objects.get(slug="demo")

    with pytest.raises(CommandError) as exc:
        call_command("train", "demo", "--kind", "reward", "--max-steps", "2", "--wait", "--no-progress", stdout=StringIO())
    assert exc.value.returncode == 2 and "rank some tasks first" in str(exc.value)
    assert not TrainingJob.objects.exists()

    assert _rank_everything(project) == 3 * project.tasks.count()
    for kind, export_format, said in (("reward", "pairs", "training pairs and"), ("dpo", "pairs", "training pairs and"),
                                      ("sft", "sft", "training sft rows and"), ("kto", "unpaired", "training unpaired rows")):
        out = StringIO()
        call_command("train", "demo", "--kind", kind, "--max-steps", "2", "--test-fraction", "0.25", "--wait",
                     "--no-progress", stdout=out)
        job = TrainingJob.objects.filter(project=project, kind=kind).get()
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.export is not None and job.export.format == export_format
        assert job.export.manifest["splits"]["train"]["rows"] > 0 and job.export.manifest["splits"]["test"]["rows"] > 0
        assert said in out.getvalue() and "succeeded" in out.getvalue() and "held-out" in out.getvalue()
    # One export for each train call; the first one, before any ranking, had nothing to train on.
    assert ExportSnapshot.objects.filter(project=project).count() == 5
