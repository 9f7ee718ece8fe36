"""Constitutions: principles parsed from top-level Markdown list items, versioned, from the command and the API."""
from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Constitution, Role
from annotation.services.judge import constitution_create, constitution_parse
from tests.export_factories import make_project, make_user
from tests.factories import api_client

pytestmark = pytest.mark.django_db


def test_each_top_level_list_item_is_one_principle_with_its_continuation_lines():
    text = (
        "# Constitution\n\nIntro paragraph.\n\n- Be helpful:\n  answer the question asked.\n"
        "  - a nested note stays with its parent\n* Be honest.\n\n1. Be harmless.\n\n```\n- not a principle\n```\n"
    )
    assert constitution_parse(text) == [
        "Be helpful: answer the question asked. - a nested note stays with its parent", "Be honest.", "Be harmless.",
    ]


def test_a_new_version_leaves_the_old_one_as_it_was(tmp_path, capsys):
    project = make_project("c1")
    path = tmp_path / "c.md"
    path.write_text("- One.\n- Two.\n")
    call_command("constitution", "c1", "--file", str(path))
    path.write_text("- Three.\n")
    call_command("constitution", "c1", "--file", str(path))
    assert capsys.readouterr().out.split() == ["1", "2"]
    assert list(Constitution.objects.filter(project=project).order_by("version").values_list("principles", flat=True)) == [
        ["One.", "Two."], ["Three."]]
    call_command("constitution", "c1", "--show")
    assert "version 2 (1 principles)" in capsys.readouterr().out


def test_a_file_without_a_principle_exits_2_naming_the_problem(tmp_path):
    make_project("c2")
    path = tmp_path / "c.md"
    path.write_text("# Title\n\nJust prose, no list.\n")
    with pytest.raises(CommandError) as info:
        call_command("constitution", "c2", "--file", str(path))
    assert info.value.returncode == 2 and "no principle" in str(info.value)
    assert not Constitution.objects.exists()


def test_the_api_lists_and_adds_versions_for_engineers_only():
    engineer, annotator, stranger = make_user("eng"), make_user("ann"), make_user("str")
    project = make_project("c3", members={engineer: Role.ENGINEER, annotator: Role.ANNOTATOR})
    url = f"/api/v1/projects/{project.pk}/constitutions/"
    created = api_client(engineer).post(url, {"text": "- Be kind.\n- Be brief.\n"}, format="json")
    assert created.status_code == 201 and created.json()["version"] == 1 and created.json()["principles"] == ["Be kind.", "Be brief."]
    bad = api_client(engineer).post(url, {"text": "nothing here"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["fields"] == {"text": ["no principle (no top-level list item)"]}
    listed = api_client(engineer).get(url).json()
    assert [c["version"] for c in listed["results"]] == [1]
    assert api_client(annotator).get(url).status_code == 403
    assert api_client(stranger).get(url).status_code == 404
    constitution_create(project=project, text="- Another.")
    assert [c["version"] for c in api_client(engineer).get(url).json()["results"]] == [2, 1]
