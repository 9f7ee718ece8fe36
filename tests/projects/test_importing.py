"""Prompt import: all or nothing, every bad line reported, dedup, CSV, ready-made responses, limits."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from annotation.errors import ApplicationError
from annotation.models import Prompt, RankingTask, Response, Role
from annotation.services.importing import ImportRejected, prompt_content_hash, prompts_import
from annotation.services.tasks import response_text_hash
from tests.factories import api_client, make_project, make_user

ROOT = Path(__file__).resolve().parents[2]

# The acceptance case: three bad lines (invalid JSON, missing prompt, unknown role) among good ones.
THREE_BAD = "\n".join(
    [
        json.dumps({"prompt": "What is the capital of France?"}),
        '{"prompt": "unterminated',
        json.dumps({"id": "p3", "metadata": {"topic": "none"}}),
        json.dumps({"messages": [{"role": "wizard", "content": "Cast a spell"}]}),
        json.dumps({"prompt": "Write a haiku about rain.", "responses": ["Rain taps the window", "Soft rain falls"]}),
    ]
) + "\n"


def jsonl(*records) -> bytes:
    return ("\n".join(json.dumps(r) for r in records) + "\n").encode()


def run_import(project, data: bytes | str, file_format: str = "jsonl"):
    raw = data.encode() if isinstance(data, str) else data
    return prompts_import(project=project, fileobj=io.BytesIO(raw), file_format=file_format)


def rejected_lines(project, data, file_format="jsonl") -> dict[int, str]:
    with pytest.raises(ImportRejected) as caught:
        run_import(project, data, file_format)
    return {e.line: e.reason for e in caught.value.errors}


@pytest.fixture
def project(db):
    return make_project("Import target", admin=make_user("owner"))


# --- all or nothing ------------------------------------------------------------------------


def test_file_with_three_bad_lines_is_refused_whole_with_every_line_number(project):
    errors = rejected_lines(project, THREE_BAD)
    assert sorted(errors) == [2, 3, 4]
    assert errors[2].startswith("invalid JSON")
    assert "missing 'prompt'" in errors[3]
    assert 'unknown role "wizard"' in errors[4]
    assert Prompt.objects.count() == 0 and Response.objects.count() == 0 and RankingTask.objects.count() == 0


def test_command_exits_2_listing_every_bad_line(project, tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(THREE_BAD, encoding="utf-8")
    with pytest.raises(CommandError) as caught:
        call_command("import_prompts", project.slug, str(path), "--no-progress", stdout=StringIO())
    assert caught.value.returncode == 2
    message = str(caught.value)
    for line in (2, 3, 4):
        assert f"{path}:{line}:" in message
    assert "nothing was imported" in message
    assert Prompt.objects.count() == 0


@pytest.mark.needs_postgres
def test_command_process_exit_status_is_2_for_a_bad_file(transactional_db, tmp_path):
    project = make_project("Subprocess target")
    path = tmp_path / "prompts.jsonl"
    path.write_text(THREE_BAD, encoding="utf-8")
    db = connection.settings_dict
    url = f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "1"}
    result = subprocess.run(
        [sys.executable, "manage.py", "import_prompts", project.slug, str(path), "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert all(f"{path}:{n}:" in result.stderr for n in (2, 3, 4))
    assert Prompt.objects.count() == 0

    path.write_text(jsonl({"prompt": "a"}, {"prompt": "b"}).decode(), encoding="utf-8")
    ok = subprocess.run(
        [sys.executable, "manage.py", "import_prompts", project.slug, str(path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "2 prompts imported" in ok.stdout and "validating" in ok.stderr  # tqdm bar on stderr
    assert Prompt.objects.filter(project=project).count() == 2


def test_api_upload_of_a_bad_file_answers_400_listing_every_bad_line(project):
    engineer = make_user("eng")
    project.memberships.create(user=engineer, role=Role.ENGINEER)
    upload = SimpleUploadedFile("prompts.jsonl", THREE_BAD.encode(), content_type="application/x-ndjson")
    response = api_client(engineer).post(f"/api/v1/projects/{project.slug}/prompts/import/", {"file": upload}, format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_file"
    assert [e["line"] for e in error["line_errors"]] == [2, 3, 4]
    assert len(error["fields"]["file"]) == 3 and error["fields"]["file"][0].startswith("line 2: invalid JSON")
    assert Prompt.objects.count() == 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"prompt": ""}', "'prompt' is empty"),
        ('{"prompt": 5}', "'prompt' must be a string"),
        ('{"prompt": "a", "messages": [{"role": "user", "content": "b"}]}', "not both"),
        ('{"messages": []}', "non-empty list"),
        ('{"messages": [{"role": "user"}]}', "message 1: 'content'"),
        ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}', "last message"),
        ('{"prompt": "q", "responses": "one"}', "'responses' must be a list"),
        ('{"prompt": "q", "responses": ["ok", ""]}', "response 2"),
        ('{"prompt": "q", "responses": [{"text": "x"}]}', "response 1"),
        ('{"prompt": "q", "metadata": [1]}', "'metadata' must be an object"),
        ('{"prompt": "q", "id": {"a": 1}}', "'id' must be a string"),
        ('{"prompt": "q", "metadata": {"x": NaN}}', "NaN"),
        ('{"prompt": "nul \\u0000 here"}', "NUL"),
    ],
)
def test_each_kind_of_bad_line_is_named(project, line, reason):
    errors = rejected_lines(project, json.dumps({"prompt": "fine"}) + "\n" + line + "\n")
    assert list(errors) == [2]
    assert reason in errors[2]


def test_non_utf8_line_is_reported_and_blank_lines_are_skipped(project):
    data = b'{"prompt": "ok"}\n\n   \n{"prompt": "caf\xe9"}\n'
    assert list(rejected_lines(project, data)) == [4]


def test_empty_file_and_unknown_format_are_refused(project):
    with pytest.raises(ApplicationError, match="empty"):
        run_import(project, b"")
    with pytest.raises(ApplicationError, match="no prompts"):
        run_import(project, b"\n\n")
    upload = SimpleUploadedFile("prompts.txt", b'{"prompt": "x"}\n')
    response = api_client(project.created_by).post(f"/api/v1/projects/{project.slug}/prompts/import/", {"file": upload})
    assert response.status_code == 400 and "file_format" in response.json()["error"]["fields"]
    forced = SimpleUploadedFile("prompts.txt", b'{"prompt": "x"}\n')
    response = api_client(project.created_by).post(
        f"/api/v1/projects/{project.slug}/prompts/import/", {"file": forced, "file_format": "jsonl"}
    )
    assert response.status_code == 201 and response.json()["prompts_created"] == 1


# --- dedup ---------------------------------------------------------------------------------


def test_reimport_adds_nothing_and_says_how_many_were_there(project):
    with_system = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "three"}]}
    data = jsonl({"prompt": "one", "id": 1}, {"prompt": "two"}, with_system)
    first = run_import(project, data)
    assert (first.prompts_created, first.prompts_existing) == (3, 0)
    again = run_import(project, data + jsonl({"prompt": "four"}))
    assert (again.prompts_created, again.prompts_existing) == (1, 3)
    assert Prompt.objects.filter(project=project).count() == 4
    stored = Prompt.objects.get(project=project, external_id="1")
    assert stored.messages == [{"role": "user", "content": "one"}]
    assert stored.content_hash == prompt_content_hash(stored.messages)


def test_the_same_prompt_twice_in_one_file_is_imported_once(project):
    result = run_import(project, jsonl({"prompt": "same"}, {"prompt": "  same  "}, {"messages": [{"role": "user", "content": "same"}]}))
    assert (result.prompts_created, result.duplicates_in_file) == (1, 2)


def test_the_same_prompt_in_another_project_is_a_separate_prompt(project):
    other = make_project("Other")
    run_import(project, jsonl({"prompt": "shared"}))
    assert run_import(other, jsonl({"prompt": "shared"})).prompts_created == 1


# --- ready-made responses ------------------------------------------------------------------


def test_ready_made_responses_create_tasks_and_identical_ones_are_merged(project):
    result = run_import(
        project,
        jsonl(
            {"prompt": "two distinct", "responses": ["Paris.", "Lyon."]},
            {"prompt": "with a duplicate", "responses": ["Same answer", "  Same answer ", "Other answer"]},
            {"prompt": "only one distinct", "responses": ["x", "x"]},
            {"prompt": "objects", "responses": [{"content": "A", "model": "m-1"}, {"content": "B", "model": "m-2"}]},
            {"prompt": "no responses"},
        ),
    )
    assert (result.responses_created, result.tasks_created) == (9, 3)
    assert (result.responses_merged, result.prompts_without_task) == (2, 1)
    merged = RankingTask.objects.get(prompt__messages__0__content="with a duplicate")
    assert sorted(r.text.strip() for r in merged.responses.all()) == ["Other answer", "Same answer"]
    response = Response.objects.get(text="A")
    assert response.run_id is None and response.model_name == "m-1" and response.text_hash == response_text_hash("A")
    assert all(t.overlap == project.overlap for t in RankingTask.objects.all())

    again = run_import(project, jsonl({"prompt": "two distinct", "responses": ["Paris.", "Lyon."]}))
    assert (again.responses_created, again.responses_ignored, again.tasks_created) == (0, 2, 0)
    assert RankingTask.objects.count() == 3


def test_responses_added_later_to_a_prompt_without_any_create_its_task(project):
    run_import(project, jsonl({"prompt": "bare"}))
    later = run_import(project, jsonl({"prompt": "bare", "responses": ["one", "two"]}))
    assert (later.prompts_existing, later.responses_created, later.tasks_created) == (1, 2, 1)


# --- CSV -----------------------------------------------------------------------------------


def test_csv_with_response_columns_metadata_and_multiline_cells(project):
    data = (
        "id,prompt,metadata,response_1,response_2\r\n"
        'c1,"Explain recursion.","{""topic"": ""cs""}","A function calling itself.","Recursion is\nwhen it recurs."\r\n'
        "c2,Say hi,,,\r\n"
        ",,,,\r\n"
    )
    result = run_import(project, data, "csv")
    assert (result.prompts_created, result.responses_created, result.tasks_created) == (2, 2, 1)
    first = Prompt.objects.get(external_id="c1")
    assert first.metadata == {"topic": "cs"}
    assert sorted(first.responses.values_list("text", flat=True)) == ["A function calling itself.", "Recursion is\nwhen it recurs."]


def test_csv_bad_rows_are_reported_by_physical_line_number(project):
    data = (
        "prompt,messages,responses\n"
        '"multi\nline ok",,\n'  # lines 2-3
        ",,\n"  # line 4: blank row, skipped
        ",,\"[1\"\n"  # line 5: bad JSON responses (and no prompt)
        ',"[{""role"": ""bot"", ""content"": ""x""}]",\n'  # line 6: unknown role
        "fine,,\n"
    )
    errors = rejected_lines(project, data, "csv")
    assert sorted(errors) == [5, 6]
    assert "'responses' is not valid JSON" in errors[5]
    assert 'unknown role "bot"' in errors[6]


def test_csv_without_a_prompt_column_is_refused(project):
    errors = rejected_lines(project, "question,answer\nhi,there\n", "csv")
    assert list(errors) == [1] and "no 'prompt'" in errors[1]


# --- limits --------------------------------------------------------------------------------


def test_limits_give_clear_errors(project, settings):
    settings.IMPORT_MAX_LINE_BYTES = 200
    settings.IMPORT_MAX_MESSAGES = 2
    settings.IMPORT_MAX_RESPONSES = 3
    data = jsonl(
        {"prompt": "x" * 300},
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
        {"prompt": "q", "responses": ["1", "2", "3", "4"]},
        {"prompt": "fine"},
    )
    errors = rejected_lines(project, data)
    assert errors == {
        1: "line longer than 200 bytes",
        2: "too many messages: 3 (limit 2)",
        3: "too many responses: 4 (limit 3)",
    }
    settings.IMPORT_MAX_FILE_BYTES = 10
    with pytest.raises(ApplicationError) as caught:
        run_import(project, jsonl({"prompt": "too big for the limit"}))
    assert "limit is 10 bytes" in caught.value.message and "file" in caught.value.fields


class NoSlurpFile(io.BytesIO):
    """Fails the test if the importer tries to read the whole file at once."""

    def read(self, size=-1):
        assert size is not None and size >= 0, "read() of the whole file"
        return super().read(size)

    def readlines(self, hint=-1):
        raise AssertionError("readlines() of the whole file")


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_large_file_streams_in_chunks_without_reading_it_whole(project, file_format):
    n = 4500  # more than two insert chunks
    if file_format == "jsonl":
        data = jsonl(*({"prompt": f"prompt {i}", "responses": [f"a{i}", f"b{i}"]} for i in range(n)))
    else:
        data = ("prompt,response_1,response_2\n" + "".join(f"prompt {i},a{i},b{i}\n" for i in range(n))).encode()
    result = prompts_import(project=project, fileobj=NoSlurpFile(data), file_format=file_format)
    assert (result.records, result.prompts_created, result.responses_created, result.tasks_created) == (n, n, 2 * n, n)
    assert Prompt.objects.filter(project=project).count() == n


# --- concurrency ---------------------------------------------------------------------------


@pytest.mark.needs_postgres
def test_two_concurrent_imports_of_the_same_file_insert_each_prompt_once(transactional_db):
    project = make_project("Concurrent")
    data = jsonl(*({"prompt": f"p{i}", "responses": ["yes", "no"]} for i in range(300)))
    results, failures = [], []

    def worker():
        try:
            results.append(run_import(project, data))
        except Exception as exc:  # surfaced below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert sorted((r.prompts_created, r.prompts_existing) for r in results) == [(0, 300), (300, 0)]
    assert Prompt.objects.filter(project=project).count() == 300
    assert Response.objects.filter(prompt__project=project).count() == 600
    assert RankingTask.objects.filter(project=project).count() == 300


# --- API -----------------------------------------------------------------------------------


def test_engineer_uploads_csv_and_members_list_prompts_paginated(project):
    engineer, annotator = make_user("eng"), make_user("ann")
    project.memberships.create(user=engineer, role=Role.ENGINEER)
    project.memberships.create(user=annotator, role=Role.ANNOTATOR)
    csv_data = "prompt,response\n" + "".join(f"question {i},answer {i}\n" for i in range(5))
    upload = SimpleUploadedFile("batch.csv", csv_data.encode(), content_type="text/csv")
    response = api_client(engineer).post(f"/api/v1/projects/{project.id}/prompts/import/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["prompts_created"] == 5

    page = api_client(annotator).get(f"/api/v1/projects/{project.slug}/prompts/?limit=2&offset=2")
    assert page.status_code == 200
    body = page.json()
    assert body["count"] == 5 and [p["messages"][0]["content"] for p in body["results"]] == ["question 2", "question 3"]
    assert body["next"] and body["previous"] is not None


def test_api_import_without_a_file_names_the_field(project):
    response = api_client(project.created_by).post(f"/api/v1/projects/{project.slug}/prompts/import/", {}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["error"]["fields"]


def test_tricky_text_survives_the_round_trip(project):
    tricky = "Tab\there, back\\slash, quote \" and newline\nthen émoji 🎉 and \\N and \\."
    run_import(project, jsonl({"prompt": tricky, "metadata": {"k": tricky}, "responses": [tricky, tricky + "!"]}))
    prompt = Prompt.objects.get(project=project)
    assert prompt.messages == [{"role": "user", "content": tricky.strip()}]
    assert prompt.metadata == {"k": tricky}
    assert sorted(prompt.responses.values_list("text", flat=True)) == [tricky, tricky + "!"]
    assert prompt.created_at is not None and prompt.responses.first().text_hash == response_text_hash(tricky)
