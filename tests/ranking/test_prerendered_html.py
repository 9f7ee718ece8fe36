"""The Markdown of new tasks is rendered once, by a worker, and the lease shows what was stored; what
has no stored HTML of the current renderer is rendered in the request, exactly as before."""
from __future__ import annotations

import io
import json
import time
import zlib

import psycopg
import pytest
from django.db import connection
from django.test import override_settings

from annotation.models import Project, Prompt, PromptHtml, RankingTask, Response, ResponseHtml
from annotation.services import prerender
from annotation.services.importing import prompts_import
from annotation.services.prerender import prerender_fill
from annotation.services.rendering import RENDERER_VERSION, markdown_to_safe_html
from tests.factories import make_member, make_project
from tests.threads import run_threads

pytestmark = [pytest.mark.needs_postgres]

SYSTEM = "You are a careful senior engineer. Answer with **working code** and say what each part does."


def answer(i: int, j: int) -> str:
    return (
        f"## Approach {j} for question {i}\n\n"
        "The short version: read the file once, keep only what you need, and let the library do the parsing.\n\n"
        "```python\nimport csv\n\n\ndef totals(path):\n    with open(path, newline='') as f:\n"
        f"        return sum(float(row['amount']) for row in csv.DictReader(f))  # variant {j}\n```\n\n"
        "| step | cost |\n|---|---|\n| read | one pass |\n| sum | O(n) |\n\n"
        "Two caveats:\n\n1. A row without `amount` raises `KeyError`.\n2. <script>alert(1)</script> stays text.\n"
    )


def import_realistic(project: Project, n: int = 3, k: int = 3, *, start: int = 0) -> None:
    lines = [
        json.dumps({"id": f"q{i}", "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"How do I total the `amount` column of a CSV file? (case {i})\n\nIt has a header row."},
        ], "responses": [{"content": answer(i, j), "model": "m"} for j in range(k)]})
        for i in range(start, start + n)
    ]
    prompts_import(project=project, fileobj=io.BytesIO("\n".join(lines).encode()), file_format="jsonl")


def lease(member, project: Project) -> dict:
    response = member.client().get(f"/api/v1/projects/{project.pk}/next-task")
    assert response.status_code == 200, response.content
    return response.json()


def html_by_text(task: dict) -> dict[str, str]:
    """Each shown response's text -> the HTML the payload gave with it."""
    return {r["content"]: r["content_html"] for r in task["responses"]}


def stored_rows(project: Project) -> tuple[int, int]:
    return (ResponseHtml.objects.filter(response__prompt__project=project).count(),
            PromptHtml.objects.filter(prompt__project=project).count())


@pytest.fixture
def project(db):
    return make_project("Prerendered", overlap=1, responses_per_prompt=3)


@pytest.mark.django_db
def test_the_fill_stores_what_the_renderer_makes_once_and_the_lease_shows_it(project):
    import_realistic(project)  # not committed: the fill the import asks for after its commit has not run
    assert stored_rows(project) == (0, 0)
    assert prerender_fill(project_id=project.pk) == 9 + 3
    for row in ResponseHtml.objects.filter(response__prompt__project=project).select_related("response"):
        assert row.renderer == RENDERER_VERSION and row.html == markdown_to_safe_html(row.response.text)
        assert "<pre>" in row.html and "<table>" in row.html and "<script>" not in row.html
    for row in PromptHtml.objects.filter(prompt__project=project).select_related("prompt"):
        assert row.turns == [markdown_to_safe_html(m["content"]) for m in row.prompt.messages]
    assert prerender_fill(project_id=project.pk) == 0  # idempotent

    task = lease(make_member(project, "reader"), project)
    stored = dict(ResponseHtml.objects.filter(response__prompt__project=project).values_list("response__text", "html"))
    assert html_by_text(task) == {text: stored[text] for text in html_by_text(task)}
    assert [m["content_html"] for m in task["messages"]] == [markdown_to_safe_html(m["content"]) for m in task["messages"]]


@pytest.mark.django_db
def test_the_lease_reads_the_stored_html_and_renders_what_has_none_or_another_renderers():
    project = make_project("Stored or not", overlap=2, responses_per_prompt=3)  # two annotators lease the one task
    import_realistic(project, n=1)
    prerender_fill(project_id=project.pk)
    first, second, third = Response.objects.filter(prompt__project=project).order_by("sample_index")
    # Markers no renderer would write: the lease can only show them by reading the table.
    ResponseHtml.objects.filter(response=first).update(html="<p>stored marker</p>")
    ResponseHtml.objects.filter(response=second).delete()
    ResponseHtml.objects.filter(response=third).update(html="<p>old renderer</p>", renderer=RENDERER_VERSION % 32_000 + 1)
    PromptHtml.objects.filter(prompt__project=project).update(turns=["<p>stored turn 1</p>", "<p>stored turn 2</p>"])

    shown = html_by_text(task := lease(make_member(project, "reader"), project))
    assert shown[first.text] == "<p>stored marker</p>"
    assert shown[second.text] == markdown_to_safe_html(second.text)  # none stored: rendered here
    assert shown[third.text] == markdown_to_safe_html(third.text)  # another renderer's: ignored
    assert [m["content_html"] for m in task["messages"]] == ["<p>stored turn 1</p>", "<p>stored turn 2</p>"]

    with override_settings(PRERENDERED_HTML=False):  # every lease renders: the stored marker is not read
        other = make_member(project, "reader-2")
        assert html_by_text(lease(other, project))[first.text] == markdown_to_safe_html(first.text)

    # The fill renders again what an older renderer wrote, and what is missing.
    assert prerender_fill(project_id=project.pk) == 2
    assert ResponseHtml.objects.get(response=third).renderer == RENDERER_VERSION
    assert ResponseHtml.objects.get(response=second).html == markdown_to_safe_html(second.text)


@pytest.mark.django_db
def test_a_fill_of_new_tasks_starts_after_the_id_it_is_given_and_skips_finished_tasks(project):
    import_realistic(project, n=4)
    tasks = list(RankingTask.objects.filter(project=project).order_by("id"))
    RankingTask.objects.filter(pk=tasks[3].pk).update(is_complete=True)
    assert prerender_fill(project_id=project.pk, since_task_id=tasks[1].pk, batch=1) == 3 + 1  # task 3 only
    assert set(ResponseHtml.objects.values_list("response__tasks", flat=True)) == {tasks[2].pk}


@pytest.mark.django_db(transaction=True)
def test_a_fill_that_dies_mid_way_keeps_its_batches_and_the_next_fill_renders_the_rest(monkeypatch):
    project = make_project("Killed fill", overlap=1, responses_per_prompt=3)
    import_realistic(project, n=4)
    calls = {"n": 0}
    real = prerender.markdown_render

    class WorkerDied(BaseException):  # not an Exception: nothing in the fill may catch it, as with a kill
        pass

    def dies_on_the_seventh(text: str) -> str:  # the fault: the process "dies" inside the second batch
        calls["n"] += 1
        if calls["n"] == 7:
            raise WorkerDied
        return real(text)

    monkeypatch.setattr(prerender, "markdown_render", dies_on_the_seventh)
    with pytest.raises(WorkerDied):
        prerender_fill(project_id=project.pk, batch=1)  # 3 responses + 1 prompt per batch
    assert stored_rows(project) == (3, 1)  # the first batch committed, the second rolled back whole
    monkeypatch.setattr(prerender, "markdown_render", real)
    assert prerender_fill(project_id=project.pk, batch=1) == 3 * 4
    assert stored_rows(project) == (12, 4)


@pytest.mark.django_db(transaction=True)
def test_concurrent_fills_write_each_text_once_and_a_whole_project_fill_runs_one_at_a_time():
    project = make_project("Concurrent fill", overlap=1, responses_per_prompt=3)
    import_realistic(project, n=30)  # committed; without a broker (eager) no fill was asked for
    assert stored_rows(project) == (0, 0)
    rendered: list[int] = []
    run_threads(lambda: rendered.append(prerender_fill(project_id=project.pk, since_task_id=1, batch=4)), [()] * 4)
    assert stored_rows(project) == (90, 30) and sum(rendered) >= 120  # some texts rendered twice, stored once
    for row in ResponseHtml.objects.select_related("response"):
        assert row.html == markdown_to_safe_html(row.response.text)

    ResponseHtml.objects.all().delete()
    key = zlib.crc32(f"prerender-project:{project.pk}".encode())
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"] or "postgres",
                         dbname=db["NAME"], autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [key])  # another whole-project fill is running
        assert prerender_fill(project_id=project.pk) == 0
        assert stored_rows(project)[0] == 0
        assert prerender_fill(project_id=project.pk, since_task_id=1) == 90  # new tasks' fills do not wait
        other.execute("SELECT pg_advisory_unlock(%s)", [key])
        ResponseHtml.objects.all().delete()
        other.execute("SELECT pg_advisory_lock_shared(%s)", [key])  # a fill of new tasks is running
        assert prerender_fill(project_id=project.pk) == 0 and stored_rows(project)[0] == 0  # no heal on top of it
    assert prerender_fill(project_id=project.pk) == 90  # the locks are gone: the whole project


@pytest.mark.django_db
def test_a_text_the_renderer_fails_on_is_left_to_the_lease_and_the_fill_goes_on(project, monkeypatch, caplog):
    import_realistic(project, n=3)
    poison = Response.objects.filter(prompt__project=project).order_by("id")[1]
    real = prerender.markdown_render
    monkeypatch.setattr(prerender, "markdown_render", lambda text: real(text) if text != poison.text else 1 / 0)
    assert prerender_fill(project_id=project.pk, batch=1) == 8 + 3  # every other response, every prompt
    assert not ResponseHtml.objects.filter(response=poison).exists()
    assert f"could not render response {poison.pk}" in caplog.text


@pytest.mark.django_db
def test_deleting_a_project_deletes_its_stored_html(project):
    import_realistic(project, n=2)
    prerender_fill(project_id=project.pk)
    response_ids = list(Response.objects.filter(prompt__project=project).values_list("id", flat=True))
    prompt_ids = list(Prompt.objects.filter(project=project).values_list("id", flat=True))
    project.delete()
    assert not ResponseHtml.objects.filter(response_id__in=response_ids).exists()
    assert not PromptHtml.objects.filter(prompt_id__in=prompt_ids).exists()


def _wait_for(condition, seconds: float = 120.0) -> bool:
    deadline = time.monotonic() + seconds  # generous on a shared machine, polled, not slept through
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_renders_imported_and_generated_tasks_and_heals_a_lease_that_had_to_render(celery_worker):
    project = make_project("Worker render", overlap=1, responses_per_prompt=3)
    import_realistic(project, n=3)  # the COPY path: commits, then asks for the fill of its new tasks
    assert _wait_for(lambda: stored_rows(project) == (9, 3)), celery_worker.log()[-3000:]

    with override_settings(PORTABLE_SQL=True):  # tasks_create_for_prompts, the generation runs' path
        import_realistic(project, n=2, start=10)
    assert RankingTask.objects.filter(project=project).count() == 5
    assert _wait_for(lambda: stored_rows(project) == (15, 5)), celery_worker.log()[-3000:]

    # A lease that finds nothing stored renders, and has a worker fill the project.
    ResponseHtml.objects.all().delete()
    prerender._heal_due.reset()
    task = lease(make_member(project, "healer"), project)
    assert all(html == markdown_to_safe_html(text) for text, html in html_by_text(task).items())
    assert _wait_for(lambda: stored_rows(project)[0] == 15), celery_worker.log()[-3000:]
