"""The SFT step end to end: people write demonstrations, `train --kind sft` exports them and trains
the tiny model on them, and the held-out loss on demonstrations it never saw goes down."""
from __future__ import annotations

import pytest
from django.core.management import call_command

from annotation.models import JobStatus, Role, TrainingJob
from annotation.services.assignment import assignment_lease_next
from annotation.services.demonstrations import demonstration_submit
from tests.factories import add_prompts, make_project, make_user, numbered_prompts

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_sft_on_written_demonstrations_lowers_the_held_out_loss(tiny_model_path, capsys):
    engineer, writer = make_user("sft-eng"), make_user("sft-writer")
    project = make_project("Written answers", admin=engineer, members={writer: Role.ANNOTATOR},
                           task_type="demonstration", overlap=1)
    add_prompts(project, numbered_prompts(32))
    written = 0
    while True:
        assignment = assignment_lease_next(project=project, annotator=writer)
        if not hasattr(assignment, "pk"):  # NoTask: every prompt has its demonstration
            break
        topic = assignment.task.prompt.messages[-1]["content"].split()[3]
        # One learnable house style, so a few steps of SFT visibly fit held-out demonstrations too.
        demonstration_submit(assignment_id=assignment.pk, annotator=writer,
                             text=f"Sure. Here is a short, friendly answer about {topic}: it is interesting and useful.")
        written += 1
    assert written == 32

    call_command("train", project.slug, "--kind", "sft", "--test-fraction", "0.25", "--max-steps", "12",
                 "--option", "learning_rate=0.003", "--option", "per_device_batch_size=8", "--option", "eval_steps=0",
                 "--wait", "--no-progress")
    job = TrainingJob.objects.get(project=project, kind="sft")
    assert job.status == JobStatus.SUCCEEDED, job.error
    test = job.report["test"]
    assert test["examples"] > 0
    assert test["after"]["loss"] < test["before"]["loss"]
    assert test["after"]["perplexity"] < test["before"]["perplexity"]
    assert job.export.manifest["policy"]["sources"] == ["demonstration"]
    assert "held-out" in capsys.readouterr().out
