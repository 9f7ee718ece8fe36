"""API views for training jobs (engineers and admins only). Thin: validate, call one service or selector, serialize.

Non-members get 404 for a project or a job of it; annotators get 403.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import ApplicationError
from annotation.limits import BIGINT_MAX as MAX_ID
from annotation.models import ExportSnapshot, Role, TrainingJob
from annotation.services.access import project_get_for_user
from annotation.services.training import (
    training_job_create,
    training_job_get_for_user,
    training_job_metrics,
    training_job_start_generation,
    training_jobs_of_project,
)
from api.pagination import PaginatedApiView, query_int
from api.routing import api_path
from api.serializers.training import (
    GenerationRunStartedSerializer,
    TrainingGenerateInputSerializer,
    TrainingJobCreateInputSerializer,
    TrainingJobOutputSerializer,
    TrainingMetricOutputSerializer,
)


class TrainingJobListCreateApi(PaginatedApiView):
    @extend_schema(operation_id="project_training_jobs_list", responses=TrainingJobOutputSerializer(many=True))
    def get(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        return self.paginated(training_jobs_of_project(project=row), TrainingJobOutputSerializer)

    @extend_schema(
        operation_id="project_training_jobs_create",
        request=TrainingJobCreateInputSerializer,
        responses={202: TrainingJobOutputSerializer},
        description="Queues a training job (sft, reward, dpo, kto, orpo on an export snapshot; rloo/grpo on the "
                    "project's prompts against reward_job) on Celery queue training; poll GET "
                    "/api/v1/training-jobs/{id}/ and /metrics.",
    )
    def post(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        data = TrainingJobCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        # Another project's export or job is reported as not found in this project, never shown.
        export = None
        if values.get("export") is not None:
            export = ExportSnapshot.objects.filter(pk=values["export"], project=row).first()
            if export is None:
                raise ApplicationError("No such export in this project.", fields={"export": ["not found in this project"]})
        jobs = {name: _project_job(row, values.get(name), name)
                for name in ("judge_training_job", "reward_job", "base_training_job")}
        job = training_job_create(project=row, kind=values["kind"], created_by=request.user, export=export,
                                  base_model=values["base_model"], options=values["options"],
                                  judge_training_job=jobs["judge_training_job"], reward_job=jobs["reward_job"],
                                  base_training_job=jobs["base_training_job"], test_fraction=values["test_fraction"],
                                  allow_no_test=values["allow_no_test"], allow_server_paths=False)
        return Response(TrainingJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


def _project_job(project, job_id: int | None, field: str) -> TrainingJob | None:
    if job_id is None:
        return None
    job = TrainingJob.objects.filter(pk=job_id, project=project).first()
    if job is None:
        raise ApplicationError("No such training job in this project.", fields={field: ["not found in this project"]})
    return job


class TrainingJobDetailApi(APIView):
    @extend_schema(operation_id="training_jobs_retrieve", responses=TrainingJobOutputSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        job = training_job_get_for_user(user=request.user, job_id=job_id)
        return Response(TrainingJobOutputSerializer(job).data)


class TrainingJobMetricsApi(APIView):
    @extend_schema(
        operation_id="training_jobs_metrics",
        parameters=[
            OpenApiParameter("split", str, enum=["train", "test", "summary"], description="Only this split."),
            OpenApiParameter("after_step", {"type": "integer", "minimum": 0, "maximum": MAX_ID},
                             description="Only metrics logged after this step (for polling)."),
        ],
        responses=TrainingMetricOutputSerializer(many=True),
    )
    def get(self, request: Request, job_id: int) -> Response:
        job = training_job_get_for_user(user=request.user, job_id=job_id)
        split = request.query_params.get("split")
        if split is not None and split not in ("train", "test", "summary"):
            raise ApplicationError("split must be train, test or summary.", fields={"split": ["must be train, test or summary"]})
        after = query_int(request, "after_step", default=None, minimum=0, maximum=MAX_ID)
        rows = training_job_metrics(job=job, split=split, after_step=after)
        return Response(TrainingMetricOutputSerializer(rows, many=True).data)


class TrainingJobGenerateApi(APIView):
    @extend_schema(
        operation_id="training_jobs_generate",
        request=TrainingGenerateInputSerializer,
        responses={202: GenerationRunStartedSerializer,
                   409: OpenApiResponse(description="The job is not a finished policy job, so it has no policy to generate with.")},
        description="Starts a generation run in the job's project with the job's trained policy (sft, dpo, kto, orpo, "
                    "rloo, grpo) as the model.",
    )
    def post(self, request: Request, job_id: int) -> Response:
        job = training_job_get_for_user(user=request.user, job_id=job_id)
        data = TrainingGenerateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        options = {k: v for k, v in data.validated_data.items() if v is not None}
        run = training_job_start_generation(job=job, created_by=request.user, **options)
        return Response(GenerationRunStartedSerializer(run).data, status=status.HTTP_202_ACCEPTED)


urlpatterns = [
    *api_path("projects/<project:project>/training-jobs/", TrainingJobListCreateApi.as_view(), name="project-training-jobs"),
    *api_path("training-jobs/<id:job_id>/", TrainingJobDetailApi.as_view(), name="training-job-detail"),
    *api_path("training-jobs/<id:job_id>/metrics/", TrainingJobMetricsApi.as_view(), name="training-job-metrics"),
    *api_path("training-jobs/<id:job_id>/generate/", TrainingJobGenerateApi.as_view(), name="training-job-generate"),
]
