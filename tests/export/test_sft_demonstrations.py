"""sft on a demonstration project: one row per demonstration (accepted ones when the project reviews)."""
from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import Demonstration
from annotation.services.demonstrations import demonstration_review
from annotation.services.export import manifest_verify
from tests.demonstrations.test_demonstrations import demo_project, next_task
from tests.ranking_helpers import make_member

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]


def rows_of(out) -> list[dict]:
    return [json.loads(line) for name in ("train", "test") for line in (out / f"{name}.jsonl").read_text().splitlines()]


def write_all(project, member, texts):
    client = member.client()
    for text in texts:
        task = next_task(client, project)
        assert client.post(f"/api/v1/assignments/{task['id']}/submit", {"text": text}, format="json").status_code == 201


def test_each_demonstration_is_a_row_of_the_prompt_then_the_text_as_the_assistant_turn(tmp_path):
    project, _ = demo_project(prompts=3, overlap=1)
    write_all(project, make_member(project, "w"), ["One.", "Two.", "Three."])
    out = tmp_path / "sft"
    call_command("export_preferences", project.slug, "--format", "sft", "--out", str(out), "--test-fraction", "0.5",
                 "--no-progress")
    rows = rows_of(out)
    assert len(rows) == 3
    by_id = {d.pk: d for d in Demonstration.objects.select_related("task__prompt")}
    for row in rows:
        demo = by_id[row["demonstration_id"]]
        assert row["messages"] == [*demo.task.prompt.messages, {"role": "assistant", "content": demo.text}]
        assert (row["prompt_id"], row["task_id"], row["origin"], row["response_id"]) == (
            demo.task.prompt_id, demo.task_id, "demonstration", None)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["train"]["rows"] + manifest["splits"]["test"]["rows"] == 3
    assert manifest["policy"]["sources"] == ["demonstration"] and not manifest_verify(directory=out)


def test_a_reviewed_project_exports_only_accepted_demonstrations(tmp_path):
    project, _ = demo_project(prompts=3, overlap=1, review=True)
    write_all(project, make_member(project, "w"), ["Good.", "Bad.", "Unreviewed."])
    reviewer = make_member(project, "r")
    good, bad = Demonstration.objects.get(text="Good."), Demonstration.objects.get(text="Bad.")
    demonstration_review(demonstration_id=good.pk, project=project, reviewer=reviewer.user, accepted=True)
    demonstration_review(demonstration_id=bad.pk, project=project, reviewer=reviewer.user, accepted=False)
    out = tmp_path / "sft"
    call_command("export_preferences", project.slug, "--format", "sft", "--out", str(out), "--test-fraction", "0",
                 "--no-progress")
    rows = rows_of(out)
    assert [r["messages"][-1]["content"] for r in rows] == ["Good."]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["demonstrations_not_accepted"] == 2


def test_an_empty_demonstration_export_warns_and_a_bad_option_exits_2(tmp_path, capsys):
    project, _ = demo_project(prompts=1, overlap=1, review=True)
    write_all(project, make_member(project, "w"), ["Pending."])
    out = tmp_path / "sft"
    call_command("export_preferences", project.slug, "--format", "sft", "--out", str(out), "--no-progress")
    assert "none of its 1 demonstrations is accepted" in capsys.readouterr().err
    with pytest.raises(CommandError) as raised:
        call_command("export_preferences", project.slug, "--format", "sft", "--out", str(tmp_path / "x"),
                     "--test-fraction", "2", "--no-progress")
    assert raised.value.returncode == 2 and "test_fraction" in str(raised.value)
    assert not (tmp_path / "x").exists()
