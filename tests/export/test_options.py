"""Export options and the ranking filter are defined and validated once, for the API, the command and agreement."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from annotation.errors import ApplicationError
from annotation.models import ExportSnapshot
from annotation.services.export import export_options_from_input
from annotation.services.export.options import ExportOptionsSerializer

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_command_has_one_flag_per_option_of_the_serializer_the_api_documents():
    from django.core.management import load_command_class

    parser = load_command_class("annotation", "export_preferences").create_parser("manage.py", "export_preferences")
    flags = {action.dest for action in parser._actions}
    assert set(ExportOptionsSerializer().fields) <= flags
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    body = schema["paths"]["/api/v1/projects/{project}/exports/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    component = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert set(component["properties"]) == set(ExportOptionsSerializer().fields)
    assert component["required"] == ["format"]


def test_null_means_not_given_and_booleans_must_be_booleans():
    opts = export_options_from_input({"format": "pairs", "seed": None, "test_fraction": None, "min_agreement": None})
    assert (opts.seed, opts.test_fraction, opts.min_agreement) == (0, 0.1, None)
    for bad in ("true", 1, "yes"):
        with pytest.raises(ApplicationError) as err:
            export_options_from_input({"format": "pairs", "exclude_gold": bad})
        assert err.value.fields == {"exclude_gold": [f"must be true or false; got {bad!r}"]}
    with pytest.raises(ApplicationError) as err:
        export_options_from_input({"format": "pairs", "seed": True, "min_votes": 2.5, "desirable_tiers": "0"})
    assert err.value.fields == {"seed": ["must be an integer; got True"], "min_votes": ["must be an integer; got 2.5"],
                                "desirable_tiers": ["must be at least 1; got 0"]}


def test_annotators_may_be_a_list_or_a_comma_separated_string_and_dates_plain_dates():
    opts = export_options_from_input({"format": "pairs", "annotators": "zed, ann1,ann1", "since": "2026-01-01",
                                      "until": "2026-02-01T00:00:00Z"})
    assert opts.annotators == ["ann1", "zed"]
    assert opts.since.isoformat() == "2026-01-01T00:00:00+00:00" and opts.until.isoformat() == "2026-02-01T00:00:00+00:00"
    assert export_options_from_input({"format": "pairs", "annotators": []}).annotators is None


@pytest.mark.parametrize(
    ("command", "extra"),
    [("export_preferences", ["--format", "pairs", "--no-progress"]), ("agreement", ["--bootstrap", "0"])],
)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "since: not an ISO 8601 date or date-time: 'yesterday'"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "until: must be later than since"),
        (["--annotators", "t-u1,zed"], "annotators: not members of project 'tricky' (nor ever ranked in it): zed"),
    ],
)
def test_export_and_agreement_commands_refuse_the_same_bad_filters_with_the_same_words(tricky, tmp_path, command, extra,
                                                                                        args, message):
    out = tmp_path / "never"
    more = ["--out", str(out)] if command == "export_preferences" else []
    with pytest.raises(CommandError) as err:
        call_command(command, "tricky", *extra, *more, *args, stdout=StringIO(), stderr=StringIO())
    assert err.value.returncode == 2
    assert message in str(err.value)
    assert not out.exists()


def test_the_api_refuses_an_unknown_annotator_with_400_naming_annotators_and_stores_nothing(tricky):
    response = client_for(tricky["engineer"]).post("/api/v1/projects/tricky/exports/",
                                                   {"format": "pairs", "annotators": ["t-u1", "zed"]}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert list(error["fields"]) == ["annotators"] and "zed" in error["fields"]["annotators"][0]
    assert "t-u1" not in error["fields"]["annotators"][0]
    assert not ExportSnapshot.objects.exists()
    agreement = client_for(tricky["engineer"]).get("/api/v1/projects/tricky/agreement", {"annotators": "t-u1,zed"})
    assert agreement.status_code == 400 and agreement.json()["error"]["fields"]["annotators"] == error["fields"]["annotators"]


def test_members_and_annotators_who_ranked_without_being_members_are_known_to_both(tricky, tmp_path):
    # t-u1 ranked in the project but is no member (a former member, say); tricky-ann is a member who never ranked.
    out = tmp_path / "ok"
    call_command("export_preferences", "tricky", "--format", "rankings", "--annotators", "t-u1,tricky-ann", "--out", str(out),
                 "--no-progress", stdout=StringIO(), stderr=StringIO())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["filters"]["annotators"] == ["t-u1", "tricky-ann"] and manifest["counts"]["rankings_used"] == 2
    report = json.loads(call_command_output("agreement", "tricky", "--json", "--bootstrap", "0", "--annotators", "t-u1,tricky-ann"))
    assert report["rankings"] == 2 and report["filters"]["annotators"] == ["t-u1", "tricky-ann"]


def call_command_output(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()
