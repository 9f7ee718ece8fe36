"""Bad files: the error report is bounded (first lines listed, every one counted and summarised
by reason), and a CSV with an unterminated quote is refused with its line number."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import override_settings

from annotation.models import Prompt, Role
from annotation.services.importing import MAX_REPORTED_LINES, ImportRejected, prompts_import
from tests.factories import api_client, make_project, make_user

pytestmark = [pytest.mark.django_db]

BAD_LINES = 200_000


def _many_bad() -> bytes:
    # Two kinds of bad line, so the summary has two reasons, and one good line (nothing imported).
    lines = [b'{"prompt": "fine"}']
    for i in range(BAD_LINES):
        lines.append(b"nope" if i % 2 else b'{"id": 1}')
    return b"\n".join(lines) + b"\n"


@pytest.fixture
def project(db):
    return make_project("Bad files", admin=make_user("owner"))


def test_a_file_of_200k_bad_lines_is_reported_in_a_small_bounded_answer(project):
    with pytest.raises(ImportRejected) as caught:
        prompts_import(project=project, fileobj=io.BytesIO(_many_bad()), file_format="jsonl")
    rejected = caught.value
    assert rejected.total == BAD_LINES
    assert [e.line for e in rejected.errors] == list(range(2, 2 + MAX_REPORTED_LINES))
    assert sum(rejected.reasons.values()) == BAD_LINES and len(rejected.reasons) == 2

    engineer = make_user("eng")
    project.memberships.create(user=engineer, role=Role.ENGINEER)
    upload = SimpleUploadedFile("bad.jsonl", _many_bad(), content_type="application/x-ndjson")
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=None):
        response = api_client(engineer).post(f"/api/v1/projects/{project.slug}/prompts/import/", {"file": upload},
                                             format="multipart")
    assert response.status_code == 400
    assert len(response.content) < 50_000, len(response.content)
    error = response.json()["error"]
    assert error["code"] == "invalid_file" and error["bad_lines"] == BAD_LINES and error["truncated"] is True
    assert f"{BAD_LINES} bad lines" in error["message"]
    assert len(error["line_errors"]) == MAX_REPORTED_LINES and error["line_errors"][0]["line"] == 2
    assert len(error["fields"]["file"]) == MAX_REPORTED_LINES + 1  # the listed lines and "... and N more"
    by_reason = {r["reason"]: r["count"] for r in error["reasons"]}
    assert sorted(by_reason.values()) == [BAD_LINES // 2, BAD_LINES // 2], by_reason
    assert Prompt.objects.count() == 0


def test_the_command_lists_the_first_bad_lines_then_the_count_and_the_summary(project, tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(_many_bad())
    with pytest.raises(CommandError) as caught:
        call_command("import_prompts", project.slug, str(path), "--no-progress")
    assert caught.value.returncode == 2
    text = str(caught.value)
    listed = [line for line in text.splitlines() if line.startswith(f"  {path}:")]
    assert len(listed) == MAX_REPORTED_LINES and listed[0].startswith(f"  {path}:2: ")
    assert f"and {BAD_LINES - MAX_REPORTED_LINES} more bad lines" in text
    assert "by reason:" in text and f"{BAD_LINES // 2} x" in text
    assert len(text) < 50_000


@pytest.mark.parametrize("text", [
    'prompt,id\n"first prompt,1\nsecond prompt,2\nthird prompt,3\n',
    'prompt,id\nok prompt,1\n"never closed,2\nlater,3\n',
])
def test_a_csv_with_an_unterminated_quote_is_refused_with_its_line_number(project, text):
    with pytest.raises(ImportRejected) as caught:
        prompts_import(project=project, fileobj=io.BytesIO(text.encode()), file_format="csv")
    start = 2 if text.split("\n")[1].startswith('"') else 3
    [error] = caught.value.errors
    assert error.line == start and "unterminated quote" in error.reason, error
    assert Prompt.objects.count() == 0


def test_a_quoted_multiline_cell_that_is_closed_is_still_accepted(project):
    text = 'prompt,id\n"two\nlines, and a comma",1\nnext,2\n'
    prompts_import(project=project, fileobj=io.BytesIO(text.encode()), file_format="csv")
    assert sorted(json.dumps(p.messages) for p in Prompt.objects.all()) == sorted(
        json.dumps([{"role": "user", "content": c}]) for c in ("two\nlines, and a comma", "next"))
