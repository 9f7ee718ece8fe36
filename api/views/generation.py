"""API views for generation runs (engineers and admins). Thin: validate, call one service or selector, serialize.

Non-members get 404 for a project or a run of it; annotators get 403 (they never see model names).
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import GenerationRun, Role
from annotation.services.access import project_get_for_user
from annotation.services.generation import generation_run_cancel, generation_run_create, generation_run_get
from api.pagination import PaginatedApiView
from api.routing import api_path
from api.serializers.generation import GenerationRunCreateInputSerializer, GenerationRunOutputSerializer

ERRORS = {
    403: OpenApiResponse(description="Annotators may not see or start generation runs."),
    404: OpenApiResponse(description="No such project or run, or not a member."),
}


class GenerationRunListCreateApi(PaginatedApiView):
    @extend_schema(operation_id="project_generation_runs_list", responses={200: GenerationRunOutputSerializer(many=True), **ERRORS})
    def get(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        return self.paginated(GenerationRun.objects.filter(project=row).order_by("-id"), GenerationRunOutputSerializer)

    @extend_schema(
        operation_id="project_generation_runs_create",
        request=GenerationRunCreateInputSerializer,
        responses={
            201: GenerationRunOutputSerializer,
            400: OpenApiResponse(description="Bad setting: error.fields names it."),
            **ERRORS,
        },
        description="Starts a run over the project's prompts; its batches go to the `generation` queue. Poll the run for progress.",
    )
    def post(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        data = GenerationRunCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = generation_run_create(project=row, created_by=request.user, **data.validated_data)
        return Response(GenerationRunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class GenerationRunDetailApi(APIView):
    @extend_schema(operation_id="project_generation_run_detail", responses={200: GenerationRunOutputSerializer, **ERRORS})
    def get(self, request: Request, project: str, run_id: int) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        return Response(GenerationRunOutputSerializer(generation_run_get(project=row, run_id=run_id)).data)


class GenerationRunCancelApi(APIView):
    @extend_schema(
        operation_id="project_generation_run_cancel",
        request=None,
        responses={200: GenerationRunOutputSerializer, 409: OpenApiResponse(description="The run has already finished."), **ERRORS},
        description="Batches not yet started do nothing; a batch in flight still writes what it generated.",
    )
    def post(self, request: Request, project: str, run_id: int) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        run = generation_run_cancel(run=generation_run_get(project=row, run_id=run_id))
        return Response(GenerationRunOutputSerializer(run).data)


urlpatterns = [
    *api_path("projects/<project:project>/generation-runs/", GenerationRunListCreateApi.as_view(), name="generation-runs"),
    *api_path("projects/<project:project>/generation-runs/<id:run_id>/", GenerationRunDetailApi.as_view(), name="generation-run-detail"),
    *api_path("projects/<project:project>/generation-runs/<id:run_id>/cancel/", GenerationRunCancelApi.as_view(),
              name="generation-run-cancel"),
]
