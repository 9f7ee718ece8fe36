"""Generation runs in-process with the real tiny model: command, service, failures, API."""
from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.errors import ApplicationError, Conflict
from annotation.models import GenerationRun, RankingTask, Response, Role, RunStatus
from annotation.services.generation import generation_run_cancel, generation_run_create
from tests.factories import add_prompts, api_client, make_project, make_user, numbered_prompts
from tests.generation_helpers import responses_per_prompt, tasks_per_prompt
from workers.tasks.generation import generate_batch

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def project(tiny_model_path):
    project = make_project("Gen A", responses_per_prompt=4, overlap=2)
    add_prompts(project, numbered_prompts(50))
    return project


def test_generate_command_gives_k_responses_and_one_task_per_prompt(project, capsys):
    call_command("generate", project.slug, "--max-new-tokens", "12", "--batch-size", "16", "--wait")

    run = GenerationRun.objects.get(project=project)
    assert run.status == RunStatus.SUCCEEDED
    assert Response.objects.filter(run=run).count() == 200
    assert set(responses_per_prompt(run).values()) == {4}
    assert RankingTask.objects.filter(project=project).count() == 50
    assert set(tasks_per_prompt(project).values()) == {1}
    assert all(task.overlap == 2 for task in RankingTask.objects.filter(project=project))
    assert (run.prompts_done, run.responses_count, run.batches_done, run.batches_total) == (50, 200, 4, 4)
    assert run.tokens_count == sum(Response.objects.filter(run=run).values_list("token_count", flat=True))
    assert set(Response.objects.filter(run=run).values_list("finish_reason", flat=True)) <= {"stop", "length"}
    out = capsys.readouterr().out
    assert "succeeded: 50 prompts done, 0 failed, 200 responses" in out
    assert "tasks created: 50" in out


def test_run_records_what_reproduces_it_and_the_same_seed_gives_the_same_samples(project):
    first = generation_run_create(project=project, n=2, max_new_tokens=8, seed=7, system_prompt="Be brief.", enqueue=False)
    second = generation_run_create(project=project, n=2, max_new_tokens=8, seed=7, system_prompt="Be brief.", enqueue=False)
    for run in (first, second):
        for batch in run.batches:
            generate_batch.apply(args=[run.pk, batch])
    first.refresh_from_db()
    assert first.model_revision.startswith("sha256:") and len(first.model_revision) == 71
    assert (first.n, first.max_new_tokens, first.seed, first.system_prompt, first.batch_size) == (2, 8, 7, "Be brief.", 8)
    assert (first.temperature, first.top_p) == (project.gen_temperature, project.gen_top_p)

    def texts(run):
        return list(Response.objects.filter(run=run).order_by("prompt_id", "sample_index").values_list("text", flat=True))

    assert texts(first) == texts(second)
    assert len(texts(first)) == 100


def test_a_redelivered_batch_writes_nothing_twice(project):
    run = generation_run_create(project=project, n=3, max_new_tokens=6, batch_size=10, enqueue=False)
    batch = run.batches[0]
    generate_batch.apply(args=[run.pk, batch])
    run.refresh_from_db()
    snapshot = (run.responses_count, run.batches_done, run.prompts_done, run.tasks_created, run.tokens_count)

    generate_batch.apply(args=[run.pk, batch])  # the same message delivered again

    run.refresh_from_db()
    assert (run.responses_count, run.batches_done, run.prompts_done, run.tasks_created, run.tokens_count) == snapshot
    assert Response.objects.filter(run=run).count() == 30
    assert set(tasks_per_prompt(project).values()) == {1}
    assert run.status == RunStatus.RUNNING  # four batches still to go


def test_identical_responses_are_merged_and_such_prompts_get_no_task(tiny_model_path):
    project = make_project("Greedy", responses_per_prompt=3)
    add_prompts(project, numbered_prompts(6))
    # temperature 0 is greedy decoding: the three samples of a prompt are identical.
    call_command("generate", project.slug, "--temperature", "0", "--max-new-tokens", "6")

    run = GenerationRun.objects.get(project=project)
    assert run.status == RunStatus.SUCCEEDED
    assert Response.objects.filter(run=run).count() == 18
    assert (run.duplicates_merged, run.prompts_without_task, run.tasks_created) == (12, 6, 0)
    assert not RankingTask.objects.filter(project=project).exists()


def test_a_prompt_longer_than_the_context_is_cut_from_the_left_and_recorded(tiny_model_path):
    project = make_project("Long", responses_per_prompt=2)
    long_text = "the start that gets cut " * 200 + "the end that stays"
    add_prompts(project, [long_text, "a short one"])
    call_command("generate", project.slug, "--max-new-tokens", "16")

    run = GenerationRun.objects.get(project=project)
    assert run.status == RunStatus.SUCCEEDED
    truncated = Response.objects.filter(run=run, prompt_truncated=True)
    assert truncated.count() == 2
    assert {r.prompt.messages[0]["content"] for r in truncated} == {long_text}
    assert not Response.objects.filter(run=run, prompt_truncated=False, prompt__messages__0__content=long_text).exists()
    detail = api_client(make_user("root", is_superuser=True)).get(f"/api/v1/projects/{project.pk}/generation-runs/{run.pk}/")
    assert detail.json()["summary"]["truncated_prompts"] == 1


def test_a_model_that_cannot_load_fails_the_run_with_the_reason(project, tmp_path, django_capture_on_commit_callbacks):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with django_capture_on_commit_callbacks(execute=True):
        run = generation_run_create(project=project, model=str(broken), max_new_tokens=4)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert f"cannot load model '{broken}'" in run.error
    assert run.finished_at is not None
    assert not Response.objects.filter(run=run).exists()


def test_the_command_reports_a_failed_load_with_exit_status_1(project, tmp_path):
    (tmp_path / "config.json").write_text("not json")
    with pytest.raises(CommandError) as failure:
        call_command("generate", project.slug, "--model", str(tmp_path), "--max-new-tokens", "4")
    assert failure.value.returncode == 1
    assert "ended failed: cannot load model" in str(failure.value)


def test_cancel_stops_the_remaining_batches(project):
    run = generation_run_create(project=project, n=2, max_new_tokens=4, batch_size=10, enqueue=False)
    generate_batch.apply(args=[run.pk, run.batches[0]])
    generation_run_cancel(run=run)
    for batch in run.batches[1:]:
        generate_batch.apply(args=[run.pk, batch])

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert Response.objects.filter(run=run).count() == 20
    assert run.batches_done == 1
    with pytest.raises(Conflict):
        generation_run_cancel(run=run)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-project"], "no-such-project"),
        (["{slug}", "--n", "0"], "--n: must be an integer from 1 to 64"),
        (["{slug}", "--backend", "vllm"], "--backend: must be one of transformers, openai"),
        (["{slug}", "--top-p", "0"], "--top-p: must be a number with 0 < top_p <= 1"),
        (["{slug}", "--temperature", "-1"], "--temperature"),
        (["{slug}", "--max-new-tokens", "0"], "--max-new-tokens"),
        (["{slug}", "--batch-size", "0"], "--batch-size"),
        (["{slug}", "--model", "/no/such/model"], "--model: no such local path"),
        (["{slug}", "--backend", "openai"], "--model: required for the openai backend"),
    ],
)
def test_the_command_rejects_bad_input_with_exit_status_2_and_starts_nothing(project, args, message):
    with pytest.raises(CommandError) as failure:
        call_command("generate", *[a.format(slug=project.slug) for a in args])
    assert failure.value.returncode == 2
    assert message in str(failure.value)
    assert not GenerationRun.objects.exists()


def test_a_project_without_prompts_is_refused(tiny_model_path):
    empty = make_project("Empty")
    with pytest.raises(ApplicationError) as failure:
        generation_run_create(project=empty)
    assert failure.value.fields == {"prompts": ["the project has no prompts"]}


# API


@pytest.fixture
def people(project):
    engineer, annotator, outsider = make_user("eng"), make_user("ann"), make_user("out")
    from annotation.services.projects import membership_add

    membership_add(project=project, user=engineer, role=Role.ENGINEER)
    membership_add(project=project, user=annotator, role=Role.ANNOTATOR)
    other = make_project("Gen B", members={outsider: Role.ENGINEER})
    add_prompts(other, ["other tenant's prompt"])
    return {"engineer": engineer, "annotator": annotator, "outsider": outsider, "other": other}


def test_api_starts_a_run_and_reports_progress(project, people, django_capture_on_commit_callbacks):
    client = api_client(people["engineer"], token=True)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            f"/api/v1/projects/{project.pk}/generation-runs/", {"n": 2, "max_new_tokens": 5, "batch_size": 25}, format="json"
        )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["status"] == "queued" and body["n"] == 2 and body["progress"]["prompts_total"] == 50

    detail = client.get(f"/api/v1/projects/{project.slug}/generation-runs/{body['id']}/").json()
    assert detail["status"] == "succeeded"
    assert detail["progress"]["prompts_done"] == 50 and detail["progress"]["percent"] == 100.0
    assert detail["progress"]["responses"] == 100 and detail["progress"]["tokens"] > 0
    assert detail["summary"]["tasks_created"] + detail["summary"]["prompts_without_task"] == 50
    listed = client.get(f"/api/v1/projects/{project.pk}/generation-runs/").json()
    assert [row["id"] for row in listed["results"]] == [body["id"]]

    cancelled = client.post(f"/api/v1/projects/{project.pk}/generation-runs/{body['id']}/cancel/")
    assert cancelled.status_code == 409
    assert cancelled.json()["error"]["code"] == "conflict"


def test_api_cancel_of_a_queued_run(project, people):
    run = generation_run_create(project=project, max_new_tokens=4, enqueue=False)
    client = api_client(people["engineer"])
    response = client.post(f"/api/v1/projects/{project.pk}/generation-runs/{run.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"n": 0}, "n"),
        ({"n": "four"}, "n"),
        ({"temperature": -0.5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"batch_size": 5000}, "batch_size"),
        ({"backend": "tgi"}, "backend"),
        ({"model": "/no/such/dir"}, "model"),
        ({"backend": "openai"}, "model"),
    ],
)
def test_api_rejects_bad_settings_naming_the_field(project, people, body, field):
    response = api_client(people["engineer"]).post(f"/api/v1/projects/{project.pk}/generation-runs/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not GenerationRun.objects.exists()


def test_api_hides_other_tenants_and_refuses_annotators(project, people):
    other_run = generation_run_create(project=people["other"], max_new_tokens=4, enqueue=False)
    my_run = generation_run_create(project=project, max_new_tokens=4, enqueue=False)
    engineer = api_client(people["engineer"])
    annotator = api_client(people["annotator"])
    outsider = api_client(people["outsider"])

    # Another project's run through my project, and another project altogether: 404.
    assert engineer.get(f"/api/v1/projects/{project.pk}/generation-runs/{other_run.pk}/").status_code == 404
    assert engineer.post(f"/api/v1/projects/{project.pk}/generation-runs/{other_run.pk}/cancel/").status_code == 404
    assert engineer.get(f"/api/v1/projects/{people['other'].pk}/generation-runs/").status_code == 404
    assert engineer.post(f"/api/v1/projects/{people['other'].pk}/generation-runs/", {}, format="json").status_code == 404
    assert outsider.get(f"/api/v1/projects/{project.pk}/generation-runs/{my_run.pk}/").status_code == 404
    # Annotators never see runs (model names): 403 on every endpoint.
    for response in (
        annotator.get(f"/api/v1/projects/{project.pk}/generation-runs/"),
        annotator.post(f"/api/v1/projects/{project.pk}/generation-runs/", {}, format="json"),
        annotator.get(f"/api/v1/projects/{project.pk}/generation-runs/{my_run.pk}/"),
        annotator.post(f"/api/v1/projects/{project.pk}/generation-runs/{my_run.pk}/cancel/"),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    assert api_client().get(f"/api/v1/projects/{project.pk}/generation-runs/").status_code in (401, 403)
    other_run.refresh_from_db()
    assert other_run.status == RunStatus.QUEUED


def test_schema_describes_the_generation_endpoints(people):
    schema = api_client(people["engineer"]).get("/api/schema/", {"format": "json"}).json()
    operations = {op["operationId"] for item in schema["paths"].values() for op in item.values() if isinstance(op, dict)}
    assert {
        "project_generation_runs_list",
        "project_generation_runs_create",
        "project_generation_run_detail",
        "project_generation_run_cancel",
    } <= operations


# The transformers backend itself


class SmallMemoryBackend:
    """The real backend on a device that (like a small GPU) runs out of memory above two prompts per call.

    No GPU here, so the memory limit is simulated by raising torch's own CUDA OOM error; the
    generate calls that fit are real.
    """

    def __new__(cls, model: str):
        import torch

        from sampling.transformers_backend import TransformersBackend

        class Limited(TransformersBackend):
            calls: list[int] = []

            def _generate_chunk(self, chunk, params):
                self.calls.append(len(chunk))
                if len(chunk) > 2:
                    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
                return super()._generate_chunk(chunk, params)

        return Limited(model=model)


def test_cuda_out_of_memory_halves_the_batch_and_retries(tiny_model_path):
    from sampling import PromptInput, SamplingParams

    backend = SmallMemoryBackend(str(tiny_model_path))
    prompts = [PromptInput(i, [{"role": "user", "content": f"question {i}"}]) for i in range(1, 8)]
    results = backend.generate(prompts, SamplingParams(n=2, temperature=0.7, top_p=0.9, max_new_tokens=5, seed=0, batch_size=8))

    assert backend.calls[:3] == [7, 4, 2]  # 8 -> 4 -> 2 prompts per call, then it fits
    assert sorted(r.prompt_id for r in results) == list(range(1, 8))
    assert all(len(r.samples) == 2 and not r.error for r in results)


def test_max_new_tokens_beyond_the_context_fails_each_prompt_with_the_reason(tiny_model_path):
    project = make_project("Too long", responses_per_prompt=2)
    add_prompts(project, ["one", "two"])
    with pytest.raises(CommandError) as failure:
        call_command("generate", project.slug, "--max-new-tokens", "600")
    run = GenerationRun.objects.get(project=project)
    assert failure.value.returncode == 1
    assert run.status == RunStatus.FAILED and run.prompts_failed == 2
    assert "max_new_tokens=600 leaves no room for the prompt in the model's context of 512 tokens" in run.error


@pytest.mark.needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_running_the_same_batches_at_once_write_each_response_once(tiny_model_path):
    import threading

    from django.db import connection

    project = make_project("Race", responses_per_prompt=3)
    add_prompts(project, numbered_prompts(12))
    run = generation_run_create(project=project, max_new_tokens=8, batch_size=4, enqueue=False)
    start = threading.Barrier(2)
    errors = []

    def worker():
        try:
            start.wait()
            for batch in run.batches:  # both "workers" got every message (a redelivery race)
                generate_batch.apply(args=[run.pk, batch], throw=True)
        except Exception as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert (run.batches_done, run.prompts_done, run.responses_count) == (3, 12, 36)
    assert Response.objects.filter(run=run).count() == 36
    assert run.tokens_count == sum(Response.objects.filter(run=run).values_list("token_count", flat=True))
    assert set(tasks_per_prompt(project).values()) == {1}
    assert run.tasks_created + run.prompts_without_task == 12
