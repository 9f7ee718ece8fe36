"""API views for constitutions and judge runs (engineers and admins). Thin: validate, call one service, serialize.

Non-members get 404 for a project or a run of it; annotators get 403 (the judge is never shown to them).
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import Constitution, JudgeRun, Role
from annotation.services.access import project_get_for_user
from annotation.services.judge import constitution_create, judge_run_cancel, judge_run_create, judge_run_get
from api.pagination import PaginatedApiView
from api.routing import api_path
from api.serializers.judge import (
    ConstitutionCreateInputSerializer,
    ConstitutionOutputSerializer,
    JudgeRunCreateInputSerializer,
    JudgeRunOutputSerializer,
)

ERRORS = {
    403: OpenApiResponse(description="Annotators may not see constitutions or judge runs."),
    404: OpenApiResponse(description="No such project or run, or not a member."),
}


class ConstitutionListCreateApi(PaginatedApiView):
    @extend_schema(operation_id="project_constitutions_list", responses={200: ConstitutionOutputSerializer(many=True), **ERRORS})
    def get(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        return self.paginated(Constitution.objects.filter(project=row).order_by("-version"), ConstitutionOutputSerializer)

    @extend_schema(operation_id="project_constitutions_create", request=ConstitutionCreateInputSerializer,
                   responses={201: ConstitutionOutputSerializer, 400: OpenApiResponse(description="No principle in the text."), **ERRORS},
                   description="Adds the next version; runs and labels made under older versions keep theirs.")
    def post(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        data = ConstitutionCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        constitution = constitution_create(project=row, text=data.validated_data["text"], created_by=request.user)
        return Response(ConstitutionOutputSerializer(constitution).data, status=status.HTTP_201_CREATED)


class JudgeRunListCreateApi(PaginatedApiView):
    @extend_schema(operation_id="project_judge_runs_list", responses={200: JudgeRunOutputSerializer(many=True), **ERRORS})
    def get(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        runs = JudgeRun.objects.filter(project=row).select_related("constitution").order_by("-id")
        return self.paginated(runs, JudgeRunOutputSerializer)

    @extend_schema(operation_id="project_judge_runs_create", request=JudgeRunCreateInputSerializer,
                   responses={201: JudgeRunOutputSerializer,
                              400: OpenApiResponse(description="Bad setting, no constitution, no task, unknown model, "
                                                               "or a judge that does not answer a letter: error.fields names it."),
                              **ERRORS},
                   description="Asks the judge one comparison first, then queues the run's batches on `generation`.")
    def post(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        data = JudgeRunCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = judge_run_create(project=row, created_by=request.user, **data.validated_data)
        return Response(JudgeRunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class JudgeRunDetailApi(APIView):
    @extend_schema(operation_id="project_judge_run_detail", responses={200: JudgeRunOutputSerializer, **ERRORS})
    def get(self, request: Request, project: str, run_id: int) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        return Response(JudgeRunOutputSerializer(judge_run_get(project=row, run_id=run_id)).data)


class JudgeRunCancelApi(APIView):
    @extend_schema(operation_id="project_judge_run_cancel", request=None,
                   responses={200: JudgeRunOutputSerializer, 409: OpenApiResponse(description="The run has already finished."), **ERRORS})
    def post(self, request: Request, project: str, run_id: int) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        return Response(JudgeRunOutputSerializer(judge_run_cancel(run=judge_run_get(project=row, run_id=run_id))).data)


urlpatterns = [
    *api_path("projects/<project:project>/constitutions/", ConstitutionListCreateApi.as_view(), name="constitutions"),
    *api_path("projects/<project:project>/judge-runs/", JudgeRunListCreateApi.as_view(), name="judge-runs"),
    *api_path("projects/<project:project>/judge-runs/<id:run_id>/", JudgeRunDetailApi.as_view(), name="judge-run-detail"),
    *api_path("projects/<project:project>/judge-runs/<id:run_id>/cancel/", JudgeRunCancelApi.as_view(), name="judge-run-cancel"),
]
