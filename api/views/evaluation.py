"""API views of head-to-head evaluations (engineers and admins). Thin: validate, call one service, serialize."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import Role
from annotation.services.access import project_get_for_user
from annotation.services.evaluation import (
    evaluation_create,
    evaluation_get,
    evaluation_judge_run,
    evaluation_report,
    evaluations_of_project,
)
from api.pagination import PaginatedApiView
from api.routing import api_path
from api.serializers.evaluation import EvaluationCreateInputSerializer, EvaluationOutputSerializer, EvaluationReportSerializer
from api.serializers.judge import JudgeRunCreateInputSerializer, JudgeRunOutputSerializer


class EvaluationListCreateApi(PaginatedApiView):
    @extend_schema(operation_id="project_evaluations_list", responses=EvaluationOutputSerializer(many=True))
    def get(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        return self.paginated(evaluations_of_project(project=row), EvaluationOutputSerializer)

    @extend_schema(
        operation_id="project_evaluations_create",
        request=EvaluationCreateInputSerializer,
        responses={201: EvaluationOutputSerializer},
        description="Blinded pairwise tasks of run A against run B (one response of each per prompt); "
                    "asking again for the same runs returns the same evaluation.",
    )
    def post(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        data = EvaluationCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        evaluation = evaluation_create(project=row, runs=data.validated_data["runs"], created_by=request.user)
        return Response(EvaluationOutputSerializer(evaluation).data, status=status.HTTP_201_CREATED)


class EvaluationReportApi(APIView):
    @extend_schema(operation_id="project_evaluation_report", responses=EvaluationReportSerializer,
                   description="Win rate of run B over run A with its 95% interval, ties, and the length-controlled win rate.")
    def get(self, request: Request, project: str, evaluation_id: int) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        report = evaluation_report(evaluation=evaluation_get(project=row, evaluation_id=evaluation_id))
        return Response(EvaluationReportSerializer(report).data)


class EvaluationJudgeRunApi(APIView):
    @extend_schema(
        operation_id="project_evaluation_judge_run_create",
        request=JudgeRunCreateInputSerializer,
        responses={201: JudgeRunOutputSerializer,
                   400: OpenApiResponse(description="Bad setting, no constitution, unknown model, or a judge that does not "
                                                    "answer a letter: error.fields names it.")},
        description="A judge run (the body of judge-runs) over this evaluation's tasks only; its verdict is the report's `judge`. "
                    "Follow it at judge-runs/{id}.",
    )
    def post(self, request: Request, project: str, evaluation_id: int) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        evaluation = evaluation_get(project=row, evaluation_id=evaluation_id)
        data = JudgeRunCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = evaluation_judge_run(project=row, evaluation=evaluation, created_by=request.user, **data.validated_data)
        return Response(JudgeRunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


urlpatterns = [
    *api_path("projects/<project:project>/evaluations/", EvaluationListCreateApi.as_view(), name="evaluations"),
    *api_path("projects/<project:project>/evaluations/<id:evaluation_id>/report/", EvaluationReportApi.as_view(),
              name="evaluation-report"),
    *api_path("projects/<project:project>/evaluations/<id:evaluation_id>/judge-runs/", EvaluationJudgeRunApi.as_view(),
              name="evaluation-judge-runs"),
]
