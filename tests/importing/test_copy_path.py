"""Import with ready-made responses on PostgreSQL: responses, tasks and links by COPY, as the ORM twin writes them."""
from __future__ import annotations

import io
import json

import pytest

from annotation.errors import ApplicationError
from annotation.models import Prompt, RankingTask, Response
from annotation.services.importing import prompts_import
from annotation.services.projects import project_create
from annotation.sql import postgres_statements

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]

LINES = [
    {"id": "a", "prompt": "Two distinct answers?", "responses": ["yes", "no"]},
    {"id": "b", "prompt": "One repeated?", "responses": ["same", "  same  ", "other"]},  # trimmed duplicate merged
    {"id": "c", "prompt": "Only duplicates?", "responses": ["x", "x"]},  # one distinct response: no task
    {"id": "d", "prompt": "No responses?"},
    {"id": "e", "prompt": "With models?", "responses": [{"content": "m1", "model": "m-1"}, {"content": "m2", "model": "m-2"}]},
]


def jsonl(lines: list[dict]) -> io.BytesIO:
    return io.BytesIO("\n".join(json.dumps(line) for line in lines).encode())


def written(project) -> dict:
    """What the import wrote, by external id: responses (index, text, hash, model) and the task's response texts."""
    out = {}
    for prompt in Prompt.objects.filter(project=project).order_by("external_id"):
        responses = [(r.sample_index, r.text, r.text_hash, r.model_name, r.run_id)
                     for r in Response.objects.filter(prompt=prompt).order_by("sample_index")]
        tasks = [(sorted(t.responses.values_list("sample_index", flat=True)), t.overlap, t.submitted_count, t.active_count,
                  t.is_complete, t.is_gold) for t in RankingTask.objects.filter(prompt=prompt)]
        out[prompt.external_id] = (responses, tasks)
    return out


def test_the_copy_path_writes_what_the_portable_twin_writes(settings):
    assert postgres_statements()
    fast = project_create(name="Copy path", overlap=2)
    fast_result = prompts_import(project=fast, fileobj=jsonl(LINES), file_format="jsonl").as_dict()
    settings.PORTABLE_SQL = True
    twin = project_create(name="Twin path", overlap=2)
    twin_result = prompts_import(project=twin, fileobj=jsonl(LINES), file_format="jsonl").as_dict()
    assert fast_result == twin_result
    assert fast_result["tasks_created"] == 3 and fast_result["responses_created"] == 9
    assert fast_result["responses_merged"] == 2 and fast_result["prompts_without_task"] == 1
    assert written(fast) == written(twin)
    assert written(fast)["b"][1] == [([0, 2], 2, 0, 0, False, False)]


def test_a_repeated_import_adds_nothing_and_later_responses_of_a_bare_prompt_get_their_task():
    project = project_create(name="Again", overlap=1)
    prompts_import(project=project, fileobj=jsonl(LINES), file_format="jsonl")
    before = written(project)
    again = prompts_import(project=project, fileobj=jsonl(LINES), file_format="jsonl").as_dict()
    assert again["prompts_created"] == 0 and again["tasks_created"] == 0 and again["responses_created"] == 0
    assert written(project) == before
    # "d" had no responses: given some now, it gets them and its task; the others' are ignored.
    later = [{"id": "d", "prompt": "No responses?", "responses": ["p", "q"]}, LINES[0]]
    result = prompts_import(project=project, fileobj=jsonl(later), file_format="jsonl").as_dict()
    assert result["tasks_created"] == 1 and result["responses_created"] == 2 and result["responses_ignored"] == 2
    assert written(project)["d"][1] == [([0, 1], 1, 0, 0, False, False)]


def test_a_failure_in_the_middle_of_the_copies_leaves_nothing_written(monkeypatch):
    # Past validation, the second chunk's task COPY fails: the whole import is one transaction.
    from annotation.services import importing
    from annotation.sql import importing as sql

    monkeypatch.setattr(importing, "CHUNK", 2)
    calls = {"n": 0}
    real = sql.copy_tasks

    def failing(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ApplicationError("disk full (simulated)")
        return real(**kwargs)

    monkeypatch.setattr(sql, "copy_tasks", failing)
    project = project_create(name="Half", overlap=1)
    with pytest.raises(ApplicationError):
        prompts_import(project=project, fileobj=jsonl(LINES), file_format="jsonl")
    assert not Prompt.objects.filter(project=project).exists()
    assert not Response.objects.filter(prompt__project=project).exists()
    assert not RankingTask.objects.filter(project=project).exists()


def test_an_uncertainty_project_gets_one_scoring_of_all_the_new_tasks_however_many_chunks(django_capture_on_commit_callbacks):
    from annotation.models import JobStatus, Project, TrainingJob
    from annotation.services.importing import CHUNK

    project = project_create(name="Scored once", overlap=1)
    job = TrainingJob.objects.create(project=project, kind="reward", status=JobStatus.SUCCEEDED)
    Project.objects.filter(pk=project.pk).update(priority_mode="uncertainty", priority_model=job)
    lines = [{"prompt": f"Question {i}?", "responses": [f"a{i}", f"b{i}"]} for i in range(CHUNK * 2 + 1)]  # three chunks
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = prompts_import(project=project, fileobj=jsonl(lines), file_format="jsonl")
    assert result.tasks_created == len(lines)
    assert len(callbacks) == 2  # the scoring and the vectors' fill (response_search), each enqueued once after the last chunk
    project.refresh_from_db()
    assert (project.priority_status, project.priority_done, project.priority_total) == ("queued", 0, len(lines))
