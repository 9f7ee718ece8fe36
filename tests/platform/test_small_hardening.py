"""Issue 14 item 11, the smaller ones: unknown annotators and keys refused, help texts and choices,
a project never without an admin, progress bars without escape codes."""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import GenerationRun, Membership, Project, Role
from tests.factories import api_client, make_project, make_user

pytestmark = [pytest.mark.django_db]


def test_export_preferences_refuses_an_unknown_annotator_naming_it(tmp_path):
    project = make_project("Names", admin=make_user("ann1"))
    with pytest.raises(CommandError) as caught:
        call_command("export_preferences", project.slug, "--format", "pairs", "--out", str(tmp_path / "x"),
                     "--annotators", "ann1,zed", "--no-progress")
    assert caught.value.returncode == 2 and "zed" in str(caught.value) and "ann1" not in str(caught.value).split(":")[-1]
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_post_generation_runs_refuses_unknown_keys_in_the_error_shape():
    engineer = make_user("eng")
    project = make_project("Keys", admin=engineer)
    answer = api_client(engineer).post(f"/api/v1/projects/{project.slug}/generation-runs/",
                                       {"n": 2, "temprature": 0.7}, format="json")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["fields"] == {"temprature": ["unknown option"]} and error["code"] and error["message"]
    assert not GenerationRun.objects.exists()


def _help(command: str) -> str:
    from django.core.management import get_commands, load_command_class

    parser = load_command_class(get_commands()[command], command).create_parser("manage.py", command)
    return parser.format_help()


def test_generate_and_add_member_help_name_every_option_and_its_choices():
    generate = _help("generate")
    assert "{transformers,openai}" in generate
    for option in ("--temperature", "--top-p", "--max-new-tokens", "--seed", "--system-prompt", "--batch-size"):
        line = generate.split(option, 1)[1].split("\n  -", 1)[0]
        assert len(line.strip()) > len(option) + 10, (option, line)  # a help text, not just the metavar
    add_member = _help("add_member")
    assert "{annotator,engineer,admin}" in add_member and "ranks tasks" in add_member


def test_create_project_without_an_owner_makes_an_admin_and_prints_only_the_slug():
    out, err = StringIO(), StringIO()
    call_command("create_project", "Ownerless", stdout=out, stderr=err)
    assert out.getvalue().strip() == "ownerless"
    project = Project.objects.get(slug="ownerless")
    [admin] = Membership.objects.filter(project=project, role=Role.ADMIN)
    assert admin.user.username == "ownerless-admin" and "password" in err.getvalue() and "API token" in err.getvalue()
    assert admin.user.check_password(err.getvalue().split("password: ")[1].split()[0])


def test_create_project_with_an_unknown_owner_creates_nothing():
    with pytest.raises(CommandError) as caught:
        call_command("create_project", "Orphan", "--owner", "nobody", stdout=StringIO(), stderr=StringIO())
    assert caught.value.returncode == 2 and "nobody" in str(caught.value)
    assert not Project.objects.exists()


def test_the_import_progress_bars_write_no_cursor_up_escape_codes(tmp_path, capsys):
    from annotation.models import Prompt

    project = make_project("Bars", admin=make_user("owner"))
    path = tmp_path / "p.jsonl"
    path.write_text("".join(f'{{"prompt": "q{i}"}}\n' for i in range(50)))
    call_command("import_prompts", project.slug, str(path), stdout=StringIO())
    assert Prompt.objects.count() == 50
    err = capsys.readouterr().err
    assert "validating" in err and "importing" in err
    assert "\x1b[A" not in err and "\x1b" not in err, repr(err)


def test_generate_in_process_keeps_log_lines_off_the_progress_bar(tiny_model_path, capsys):
    import logging

    from tests.generation_helpers import add_prompts

    project = make_project("Log bars", admin=make_user("owner2"), responses_per_prompt=2)
    add_prompts(project, ["one", "two", "three"])
    handler = logging.StreamHandler()  # as a console logging config would: worker log lines on stderr
    logging.getLogger("workers").addHandler(handler)
    logging.getLogger("workers").setLevel(logging.INFO)
    try:
        call_command("generate", project.slug, "--n", "2", "--max-new-tokens", "4", "--batch-size", "1", stdout=StringIO())
    finally:
        logging.getLogger("workers").removeHandler(handler)
    err = capsys.readouterr().err
    assert "\x1b" not in err, repr(err)
    for line in err.replace("\r", "\n").split("\n"):
        # a log line is a line of its own, never glued to the bar's text
        assert not ("generation run" in line and "prompt/s" in line), repr(line)
