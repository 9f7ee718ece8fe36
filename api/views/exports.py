"""API views for exports (engineers and admins only). Thin: validate, call one service or selector, serialize.

Non-members get 404 for a project or an export of it; annotators get 403.
"""
from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import ApplicationError, NotFound
from annotation.models import Role
from annotation.services.access import project_get_for_user
from annotation.services.export import (
    export_snapshot_create,
    export_snapshot_files,
    export_snapshot_get_for_user,
    export_snapshots_of_project,
)
from api.pagination import PaginatedApiView
from api.routing import api_path
from api.serializers.exports import ExportCreateInputSerializer, ExportOutputSerializer


class ExportListCreateApi(PaginatedApiView):
    @extend_schema(operation_id="project_exports_list", responses=ExportOutputSerializer(many=True))
    def get(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        return self.paginated(export_snapshots_of_project(project=row), ExportOutputSerializer)

    @extend_schema(
        operation_id="project_exports_create",
        request=ExportCreateInputSerializer,
        responses={202: ExportOutputSerializer},
        description="Queues an export (Celery, default queue); poll GET /api/v1/exports/{id} for progress.",
    )
    def post(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        if not isinstance(request.data, dict):
            raise ApplicationError("The body must be a JSON object of export options.", fields={"non_field_errors": ["not an object"]})
        options = request.data.dict() if hasattr(request.data, "dict") else dict(request.data)  # form posts: QueryDict
        # The service validates every option with ExportCreateInputSerializer (unknown ones and
        # unknown annotators refused), naming the field.
        snapshot = export_snapshot_create(project=row, created_by=request.user, options=options)
        return Response(ExportOutputSerializer(snapshot).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(APIView):
    @extend_schema(operation_id="exports_retrieve", responses=ExportOutputSerializer)
    def get(self, request: Request, export_id: int) -> Response:
        snapshot = export_snapshot_get_for_user(user=request.user, snapshot_id=export_id)
        return Response(ExportOutputSerializer(snapshot).data)


class _Sink:
    """A write-only file for zipfile that hands written bytes over to the response generator."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _zip_stream(paths: list[Path], *, prefix: str) -> Iterator[bytes]:
    """Zip the files while streaming: at most one 1 MiB block is held at a time."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w") as archive:  # type: ignore[arg-type]  (non-seekable: data descriptors)
        for file_path in paths:
            method = zipfile.ZIP_STORED if file_path.suffix == ".parquet" else zipfile.ZIP_DEFLATED
            info = zipfile.ZipInfo(f"{prefix}/{file_path.name}")
            info.compress_type = method
            with archive.open(info, "w", force_zip64=True) as dest, file_path.open("rb") as src:
                for block in iter(lambda src=src: src.read(1 << 20), b""):
                    dest.write(block)
                    if chunk := sink.drain():
                        yield chunk
    yield sink.drain()


class ExportDownloadApi(APIView):
    @extend_schema(
        operation_id="exports_download",
        parameters=[OpenApiParameter("file", str, description="One file (e.g. train.jsonl, manifest.json); default: a zip of all.")],
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,  # all files
            (200, "application/octet-stream"): OpenApiTypes.BINARY,  # one data file (?file=)
            (200, "application/json"): OpenApiTypes.BINARY,  # ?file=manifest.json
            409: OpenApiResponse(description="The export has not finished (or failed)."),
        },
    )
    def get(self, request: Request, export_id: int):
        snapshot = export_snapshot_get_for_user(user=request.user, snapshot_id=export_id)
        paths = export_snapshot_files(snapshot=snapshot)
        name = request.query_params.get("file")
        if name:
            match = [p for p in paths if p.name == name]
            if not match:
                raise NotFound(f"Export {snapshot.id} has no file {name!r}; it has {', '.join(p.name for p in paths)}.")
            return FileResponse(match[0].open("rb"), as_attachment=True, filename=name)
        prefix = f"{snapshot.project.slug}-export-{snapshot.id}"
        response = StreamingHttpResponse(_zip_stream(paths, prefix=prefix), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{prefix}.zip"'
        return response


urlpatterns = [
    *api_path("projects/<project:project>/exports/", ExportListCreateApi.as_view(), name="project-exports"),
    *api_path("exports/<id:export_id>/", ExportDetailApi.as_view(), name="export-detail"),
    *api_path("exports/<id:export_id>/download/", ExportDownloadApi.as_view(), name="export-download"),
]
