"""The OpenAPI schema says what the server does (issue 14 item 7): paginated lists, their parameters,
the error body and every error status. tests/api/test_schema_conformance.py checks real responses."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from drf_spectacular.generators import SchemaGenerator

from api.routing import IdConverter, ProjectRefConverter

ROOT = Path(__file__).resolve().parent.parent.parent
LISTS = {
    "/api/v1/projects/": "ProjectOutput",
    "/api/v1/projects/{project}/prompts/": "PromptOutput",
    "/api/v1/projects/{project}/exports/": "ExportOutput",
    "/api/v1/projects/{project}/generation-runs/": "GenerationRunOutput",
    "/api/v1/projects/{project}/training-jobs/": "TrainingJobOutput",
}


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_list_operations_declare_the_envelope_and_limit_offset(schema):
    for path, item_name in LISTS.items():
        operation = schema["paths"][path]["get"]
        ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        envelope = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert envelope["type"] == "object" and set(envelope["required"]) >= {"count", "results"}, path
        assert set(envelope["properties"]) == {"count", "next", "previous", "results"}
        assert envelope["properties"]["results"]["items"]["$ref"].endswith(f"/{item_name}")
        params = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
        assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
        assert params["offset"]["schema"]["minimum"] == 0 and params["offset"]["schema"]["maximum"] == 2**63 - 1


def test_unpaginated_lists_stay_arrays(schema):
    members = schema["paths"]["/api/v1/projects/{project}/members/"]["get"]["responses"]["200"]["content"]["application/json"]
    assert members["schema"]["type"] == "array"
    assert not [p for p in schema["paths"]["/api/v1/projects/{project}/members/"]["get"].get("parameters", [])
                if p["name"] in ("limit", "offset")]


def test_every_operation_documents_its_errors_with_the_error_body(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert set(detail["properties"]) == {"code", "message", "fields"}
    count = 0
    for path, method, operation in operations(schema):
        count += 1
        responses = operation["responses"]
        codes = set(responses)
        assert {"401", "429", "503"} <= codes, (method, path)
        if "{" in path:
            assert {"403", "404"} <= codes, (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= codes, (method, path)
        for code, response in responses.items():
            if code.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Error", (method, path, code)
        for code in ("429", "503"):
            assert "Retry-After" in responses[code]["headers"]
    assert count >= 25


def test_conflicts_are_documented_where_the_server_answers_them(schema):
    paths = schema["paths"]
    assert "409" in paths["/api/v1/assignments/{assignment_id}/submit/"]["post"]["responses"]
    assert "409" in paths["/api/v1/projects/{project}/generation-runs/{run_id}/cancel/"]["post"]["responses"]
    assert "409" in paths["/api/v1/exports/{export_id}/download/"]["get"]["responses"]
    assert "409" in paths["/api/v1/training-jobs/{job_id}/generate/"]["post"]["responses"]


def test_each_route_appears_once_with_its_trailing_slash(schema):
    assert all(path.endswith("/") for path in schema["paths"])
    assert "/api/v1/exports/{export_id}/download/" in schema["paths"]


def test_path_parameters_carry_the_converters_patterns(schema):
    for path, _method, operation in operations(schema):
        for param in operation.get("parameters", []):
            if param["in"] != "path":
                continue
            if param["name"] == "project":
                assert param["schema"]["pattern"] == f"^{ProjectRefConverter.regex}$"
            else:
                assert param["schema"]["type"] == "integer" and param["schema"]["maximum"] == 2**63 - 1, (path, param)
                assert IdConverter.regex == "[0-9]{1,19}"


def test_request_bodies_are_json_except_the_multipart_import(schema):
    for path, method, operation in operations(schema):
        if "requestBody" in operation:
            expected = ["multipart/form-data"] if path.endswith("/prompts/import/") else ["application/json"]
            assert list(operation["requestBody"]["content"]) == expected, (method, path)


def test_the_schema_generates_without_warnings_and_validates():
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
