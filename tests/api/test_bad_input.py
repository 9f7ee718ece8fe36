"""Bad paths, query parameters and bodies are 4xx in the error shape, never a 500 (issue 14 item 4).

Each case here was a 500 (or, for an Arabic-Indic digit, a wrong answer) before: '²' in {project}
(str.isdigit is true, int() fails), '٣' read as project 3, a NUL in a slug reaching PostgreSQL,
?limit=2**63 overflowing bigint, no maximum limit, and a RecursionError on deeply nested JSON.
"""
from __future__ import annotations

import io
import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.converters import SlugConverter
from django.urls.resolvers import RoutePattern

from annotation.limits import BIGINT_MAX, MAX_JSON_DEPTH
from annotation.models import Prompt, Role
from annotation.services.importing import prompts_import
from api.routing import IdConverter, ProjectRefConverter
from tests.factories import api_client, make_member, make_project, make_ranked_project, make_user

pytestmark = pytest.mark.django_db

BAD_PROJECT_REFS = ["%C2%B2", "%D9%A3", "a%00b", "%E2%91%A0", "x%20y", "%00"]  # ², ٣, NUL, ①, a space
BAD_IDS = [str(BIGINT_MAX + 1), "99999999999999999999999", "%C2%B2", "%D9%A3", "-1", "1%00"]


def assert_error_shape(response, status: int, *, field: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "fields"} and error["message"]
    if field is not None:
        assert field in error["fields"], error
    return error


@pytest.fixture
def world():
    owner = make_user("owner", is_staff=True)
    engineer = make_user("engineer")
    project = make_project("Alpha", admin=owner, members={engineer: Role.ENGINEER})
    return {"owner": owner, "engineer": engineer, "project": project, "client": api_client(engineer)}


# ---- {project} ------------------------------------------------------------------------------


def test_a_unicode_digit_in_project_is_a_404_in_the_error_shape(world):
    assert_error_shape(world["client"].get("/api/v1/projects/%C2%B2/"), 404)  # '²': was a ValueError (500)


def test_an_arabic_indic_digit_is_not_read_as_a_project_id(world):
    project = world["project"]
    arabic = "".join(chr(0x0660 + int(d)) for d in str(project.pk))  # the project's id in Arabic-Indic digits
    assert world["client"].get(f"/api/v1/projects/{project.pk}/").status_code == 200
    assert_error_shape(world["client"].get(f"/api/v1/projects/{arabic}/"), 404)  # was 200: the project itself


def test_a_nul_in_a_slug_is_a_404_in_the_error_shape(world):
    assert_error_shape(world["client"].get("/api/v1/projects/a%00b/"), 404)  # was a DataError (500)
    assert_error_shape(world["client"].get("/api/v1/projects/a%00b/next-task"), 404)


def test_project_ids_beyond_bigint_are_not_found(world):
    assert_error_shape(world["client"].get(f"/api/v1/projects/{BIGINT_MAX + 1}/"), 404)
    assert_error_shape(world["client"].get(f"/api/v1/projects/{BIGINT_MAX}/"), 404)


# ---- every route's converters ----------------------------------------------------------------


def _routes(resolver: URLResolver, prefix: str = "") -> list[tuple[str, URLPattern]]:
    found = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            found += _routes(entry, prefix + str(entry.pattern))
        else:
            found.append((prefix + str(entry.pattern), entry))
    return found


def _app_routes() -> list[tuple[str, URLPattern]]:
    return [(route, entry) for route, entry in _routes(get_resolver())
            if route.startswith("api/v1/") or entry.lookup_str.startswith("frontend.")]


def test_every_api_and_page_route_uses_a_bounded_ascii_converter():
    routes = _app_routes()
    assert len(routes) > 40
    allowed = (ProjectRefConverter, IdConverter, SlugConverter)
    for route, entry in routes:
        assert isinstance(entry.pattern, RoutePattern), f"{route}: re_path bypasses the converters"
        for name, converter in entry.pattern.converters.items():
            assert isinstance(converter, allowed), f"{route}: <{name}> uses {type(converter).__name__}"


def _fill(route: str, bad_name: str, bad_value: str, project) -> str:
    import re

    def value(match):
        name = match.group(2)
        if name == bad_name:
            return bad_value
        return project.slug if match.group(1) in ("project", "slug") else "1"

    return "/" + re.sub(r"<(\w+):(\w+)>", value, route)


def test_bad_values_in_any_path_parameter_are_404_never_500(world):
    """Every API route, every parameter: '²', '٣', NUL, ids past bigint... 404 in the error shape;
    the pages answer their HTML 404."""
    page_client = api_client(world["engineer"])
    checked = 0
    for route, entry in _app_routes():
        for name, converter in entry.pattern.converters.items():
            bad_values = BAD_IDS if isinstance(converter, IdConverter) else BAD_PROJECT_REFS
            for bad in bad_values:
                url = _fill(route, name, bad, world["project"])
                for method in ("get", "post"):
                    response = getattr(page_client, method)(url)
                    checked += 1
                    assert response.status_code == 404, (method, url, response.status_code, response.content[:200])
                    if url.startswith("/api/"):
                        assert_error_shape(response, 404)
                    else:
                        assert response["Content-Type"].startswith("text/html")
    assert checked > 300


# ---- query parameters parsed as integers -----------------------------------------------------

LIST_URLS = ["/api/v1/projects/", "/api/v1/projects/{p}/prompts/", "/api/v1/projects/{p}/exports/",
             "/api/v1/projects/{p}/generation-runs/", "/api/v1/projects/{p}/training-jobs/"]


@pytest.mark.parametrize("url", LIST_URLS)
@pytest.mark.parametrize("param,value", [
    ("limit", str(2**63)), ("limit", "9223372036854775808"), ("limit", "1000000000"), ("limit", "0"), ("limit", "-1"),
    ("limit", "%C2%B2"), ("limit", "%D9%A3"), ("limit", "ten"), ("limit", "1" * 5000),
    ("offset", "9223372036854775808"), ("offset", "-1"), ("offset", "%D9%A3"), ("offset", "1.5"),
])
def test_bad_limit_and_offset_are_a_400_naming_the_parameter(world, url, param, value):
    response = world["client"].get(url.format(p=world["project"].slug) + f"?{param}={value}")
    assert_error_shape(response, 400, field=param)


def test_limit_is_capped_at_the_documented_maximum(world, settings):
    project = world["project"]
    Prompt.objects.bulk_create([Prompt(project=project, messages=[{"role": "user", "content": f"q{i}"}], content_hash=f"h{i}")
                                for i in range(7)])
    settings.API_MAX_PAGE_SIZE = 5
    client = world["client"]
    page = client.get(f"/api/v1/projects/{project.slug}/prompts/?limit=5")
    assert page.status_code == 200
    body = page.json()
    assert body["count"] == 7 and len(body["results"]) == 5 and "offset=5" in body["next"]
    assert_error_shape(client.get(f"/api/v1/projects/{project.slug}/prompts/?limit=6"), 400, field="limit")
    default = client.get(f"/api/v1/projects/{project.slug}/prompts/").json()  # PAGE_SIZE 100, capped to the maximum
    assert len(default["results"]) == 5
    last = client.get(f"/api/v1/projects/{project.slug}/prompts/?limit=5&offset=5").json()
    assert len(last["results"]) == 2 and last["next"] is None


def test_the_default_maximum_page_is_1000(world):
    client = world["client"]
    assert client.get("/api/v1/projects/?limit=1000").status_code == 200
    error = assert_error_shape(client.get("/api/v1/projects/?limit=1001"), 400, field="limit")
    assert "1 to 1000" in error["fields"]["limit"][0]


@pytest.mark.parametrize("value", ["%C2%B2", "%D9%A3", str(BIGINT_MAX + 1), "0", "x"])
def test_next_task_after_must_be_an_ascii_id(value):
    project, admin = make_ranked_project(tasks=2)
    client = admin.client()
    assert client.get(f"/api/v1/projects/{project.pk}/next-task?after=1").status_code in (200, 204)
    assert_error_shape(client.get(f"/api/v1/projects/{project.pk}/next-task?after={value}"), 400, field="after")


@pytest.mark.parametrize("value", ["%C2%B2", "%D9%A3", str(BIGINT_MAX + 1), "-1", "x"])
def test_training_metrics_after_step_must_be_an_ascii_integer(world, value):
    from annotation.models import TrainingJob

    job = TrainingJob.objects.create(project=world["project"], kind="reward", base_model="tiny", created_by=world["engineer"])
    client = world["client"]
    assert client.get(f"/api/v1/training-jobs/{job.pk}/metrics?after_step=3").status_code == 200
    # '²' passed str.isdigit and then failed int(): a 500
    assert_error_shape(client.get(f"/api/v1/training-jobs/{job.pk}/metrics?after_step={value}"), 400, field="after_step")


# ---- deeply nested JSON ----------------------------------------------------------------------


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [100_000, 500, MAX_JSON_DEPTH + 1])
def test_deeply_nested_json_in_a_submission_is_a_400(levels):
    project, admin = make_ranked_project(tasks=1)
    annotator = make_member(project, "deep-annotator")
    client = annotator.client()
    task = client.get(f"/api/v1/projects/{project.pk}/next-task").json()
    body = '{"ranking": ' + _deep(levels) + "}"
    response = client.post(f"/api/v1/assignments/{task['id']}/submit", data=body, content_type="application/json")
    error = assert_error_shape(response, 400)  # 100,000 levels was a RecursionError (500)
    assert "nested deeper than" in error["message"]
    order = [[r["id"]] for r in task["responses"]]
    assert client.post(f"/api/v1/assignments/{task['id']}/submit", {"ranking": order}, format="json").status_code == 201


def test_json_nested_up_to_the_limit_still_parses():
    from annotation.limits import json_loads_bounded

    assert json_loads_bounded(_deep(MAX_JSON_DEPTH)) is not None
    with pytest.raises(ValueError, match="nested deeper than"):
        json_loads_bounded(_deep(MAX_JSON_DEPTH + 1))
    with pytest.raises(ValueError, match="nested deeper than"):
        json_loads_bounded(_deep(100_000))


def test_deeply_nested_json_in_an_import_line_is_a_line_error(world):
    project = world["project"]
    good = json.dumps({"prompt": "fine"})
    deep_metadata = '{"prompt": "deep", "metadata": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "}"
    data = "\n".join([good, '{"prompt": "x", "metadata": ' + _deep(100_000) + "}", deep_metadata]).encode()
    upload = io.BytesIO(data)
    upload.name = "deep.jsonl"
    response = world["client"].post(f"/api/v1/projects/{project.slug}/prompts/import/", {"file": upload}, format="multipart")
    error = assert_error_shape(response, 400)
    text = json.dumps(error)
    assert "line 2" in text and "line 3" in text and "nested deeper than" in text
    assert not Prompt.objects.filter(project=project).exists()


def test_deeply_nested_json_in_a_csv_cell_is_a_line_error(world):
    from annotation.errors import ApplicationError

    rows = 'prompt,metadata\nhello,"' + _deep(5000) + '"\n'
    with pytest.raises(ApplicationError) as caught:
        prompts_import(project=world["project"], fileobj=io.BytesIO(rows.encode()), file_format="csv")
    assert "nested deeper than" in json.dumps(caught.value.extra or caught.value.message)


def test_nul_characters_in_a_json_body_are_a_400_naming_the_field(world):
    response = world["client"].post(f"/api/v1/projects/{world['project'].slug}/generation-runs/",
                                    {"model": "a\u0000b"}, format="json")
    assert_error_shape(response, 400, field="model")
