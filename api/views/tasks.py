"""API views of the ranking work: next task, submit, skip, heartbeat, gold tasks.

Thin: validate, call one service, serialize. Annotators only ever see their own assignments
(anyone else's is 404) and never model names or generation details. They are called once per
ranking, so kept cheap with the same checks (docs/ranking.md); the token is checked in one
statement by the API's default authentication, api.authentication.FastTokenAuthentication.
"""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import ApplicationError, NotFound
from annotation.models import Assignment, Project, RankingTask, Role
from annotation.services.access import project_get_for_user
from annotation.services.assignment import (
    NoTask,
    annotator_progress,
    assignment_heartbeat,
    assignment_lease_next,
    assignment_payload,
    assignment_skip,
    task_set_gold,
)
from annotation.services.demonstrations import (
    demonstration_preview,
    demonstration_review,
    demonstration_review_next,
    demonstration_review_payload,
    demonstration_submit,
)
from annotation.services.ranking import ranking_submit, ranking_submit_and_lease_next
from api.routing import api_path
from api.serializers.tasks import (
    AssignmentStateOutputSerializer,
    DemonstrationSubmitInputSerializer,
    DemonstrationSubmitOutputSerializer,
    GoldInputSerializer,
    GoldOutputSerializer,
    NextTaskOutputSerializer,
    NextTaskQuerySerializer,
    PreviewInputSerializer,
    PreviewOutputSerializer,
    ReviewInputSerializer,
    ReviewNextOutputSerializer,
    ReviewOutputSerializer,
    SkipInputSerializer,
    SubmitInputSerializer,
    SubmitNextOutputSerializer,
    SubmitOutputSerializer,
    SubmitQuerySerializer,
)

NO_TASK_HEADER = "X-No-Task-Reason"
NO_TASK_MESSAGE_HEADER = "X-No-Task-Message"


# Output serializers are stateless for to_representation: one shared instance per shape saves
# deep-copying every declared field on each request (about 0.4 ms of CPU for the next task).
_NEXT_TASK_OUTPUT = NextTaskOutputSerializer()
_SUBMIT_OUTPUT = SubmitOutputSerializer()
_SUBMIT_NEXT_OUTPUT = SubmitNextOutputSerializer()
_STATE_OUTPUT = AssignmentStateOutputSerializer()


class NextTaskApi(APIView):

    @extend_schema(
        operation_id="next_task",
        responses={
            200: NextTaskOutputSerializer,
            204: OpenApiResponse(
                description=f"Nothing to rank: the {NO_TASK_HEADER} header says why "
                "(all_done: the project is finished; nothing_for_you: the rest is leased to others or ranked by you)."
            ),
        },
        parameters=[NextTaskQuerySerializer],
        description="Resumes the caller's live lease in the project, or leases the next task to them.",
    )
    def get(self, request: Request, project: str) -> Response:
        query = NextTaskQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        row = project_get_for_user(user=request.user, project_ref=project)
        result = assignment_lease_next(project=row, annotator=request.user, after=query.validated_data.get("after"))
        if isinstance(result, NoTask):
            response = Response(status=status.HTTP_204_NO_CONTENT)
            response[NO_TASK_HEADER] = result.code
            response[NO_TASK_MESSAGE_HEADER] = result.message
            return response
        return Response(_NEXT_TASK_OUTPUT.to_representation(_next_task_data(result, row, request)))


def _next_task_data(assignment: Assignment, project: Project, request: Request) -> dict:
    data = assignment_payload(assignment=assignment)
    data["progress"] = annotator_progress(project=project, annotator=request.user, assignment=assignment)
    return data


class SubmitApi(APIView):

    @extend_schema(
        operation_id="assignment_submit",
        request=SubmitInputSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="A retry with the same key gets the first answer back.",
            ),
            SubmitQuerySerializer,
        ],
        responses={
            201: SubmitNextOutputSerializer,
            200: OpenApiResponse(SubmitNextOutputSerializer, description="A replayed retry (same Idempotency-Key)."),
            409: OpenApiResponse(description="Already submitted, skipped, or the lease ran out and its slot was taken."),
        },
        description="Stores the lease holder's ranking. With ?next=true the answer also carries the next assignment "
                    "(next-task's payload and rules, ?after= to prefetch) or next_empty with next-task's 204 reason.",
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        query = SubmitQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        body = request.data if isinstance(request.data, dict) else {}
        if "text" in body and "ranking" not in body:
            return _submit_demonstration(request, assignment_id)
        if "ranking" not in body and "text" not in body:
            raise ApplicationError(
                "Invalid submission: a ranking task takes `ranking`, a demonstration task `text`.",
                fields={"ranking": ["required for a ranking task"], "text": ["required for a demonstration task"]},
            )
        data = SubmitInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        submission = {"assignment_id": assignment_id, "annotator": request.user,
                      "idempotency_key": request.headers.get("Idempotency-Key", ""), **data.validated_data}
        following = None
        if query.validated_data["next"]:
            both = ranking_submit_and_lease_next(after=query.validated_data.get("after"), **submission)
            result, following = both.submitted, both
        else:
            result = ranking_submit(**submission)
        body = {
            "assignment": result.ranking.assignment_id,
            "ranking_id": result.ranking.pk,
            "status": "submitted",
            "submitted_at": result.ranking.created_at,
            "late": result.late,
            "replayed": result.replayed,
        }
        output = _SUBMIT_OUTPUT
        if following is not None:
            output = _SUBMIT_NEXT_OUTPUT
            if isinstance(following.next, NoTask):
                body["next"], body["next_empty"] = None, {"reason": following.next.code, "message": following.next.message}
            else:
                body["next"], body["next_empty"] = _next_task_data(following.next, following.project, request), None
        return Response(output.to_representation(body), status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED)


def _submit_demonstration(request: Request, assignment_id: int) -> Response:
    data = DemonstrationSubmitInputSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    result = demonstration_submit(
        assignment_id=assignment_id, annotator=request.user, idempotency_key=request.headers.get("Idempotency-Key", ""),
        **data.validated_data,
    )
    demonstration = result.demonstration
    body = {
        "assignment": demonstration.assignment_id,
        "demonstration_id": demonstration.pk,
        "status": "submitted",
        "review_status": demonstration.review_status,
        "submitted_at": demonstration.created_at,
        "late": result.late,
        "replayed": result.replayed,
    }
    return Response(DemonstrationSubmitOutputSerializer(body).data,
                    status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED)


class PreviewApi(APIView):
    @extend_schema(operation_id="markdown_preview", request=PreviewInputSerializer, responses=PreviewOutputSerializer,
                   description="The Markdown preview of a demonstration being written (the server's one renderer, sanitised).")
    def post(self, request: Request) -> Response:
        data = PreviewInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response({"html": demonstration_preview(text=data.validated_data["text"])})


class ReviewNextApi(APIView):
    @extend_schema(
        operation_id="review_next",
        responses={200: ReviewNextOutputSerializer, 204: OpenApiResponse(description="No demonstration is waiting for you."),
                   409: OpenApiResponse(description="The project does not review demonstrations.")},
        description="A pending demonstration of the project for the caller to accept or reject (never their own).",
    )
    def get(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project)
        demonstration = demonstration_review_next(project=row, reviewer=request.user)
        if demonstration is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ReviewNextOutputSerializer(demonstration_review_payload(demonstration=demonstration)).data)


class ReviewApi(APIView):
    @extend_schema(operation_id="demonstration_review", request=ReviewInputSerializer,
                   responses={200: ReviewOutputSerializer,
                              409: OpenApiResponse(description="Already reviewed (another verdict), or review not asked for.")})
    def post(self, request: Request, project: str, demonstration_id: int) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project)
        data = ReviewInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        demonstration = demonstration_review(demonstration_id=demonstration_id, project=row, reviewer=request.user,
                                             **data.validated_data)
        return Response(ReviewOutputSerializer(demonstration).data)


class SkipApi(APIView):

    @extend_schema(operation_id="assignment_skip", request=SkipInputSerializer, responses=AssignmentStateOutputSerializer)
    def post(self, request: Request, assignment_id: int) -> Response:
        data = SkipInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = assignment_skip(assignment_id=assignment_id, annotator=request.user, reason=data.validated_data["reason"])
        return Response(_STATE_OUTPUT.to_representation(assignment))


class HeartbeatApi(APIView):

    @extend_schema(operation_id="assignment_heartbeat", request=None, responses=AssignmentStateOutputSerializer)
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = assignment_heartbeat(assignment_id=assignment_id, annotator=request.user)
        return Response(_STATE_OUTPUT.to_representation(assignment))


class TaskGoldApi(APIView):
    @extend_schema(
        operation_id="task_set_gold",
        request=GoldInputSerializer,
        responses=GoldOutputSerializer,
        description="Admins only: mark a task gold with its known ranking (tiers of its response ids), or unmark it (null).",
    )
    def post(self, request: Request, task_id: int) -> Response:
        task = RankingTask.objects.filter(pk=task_id).first()
        if task is None:
            raise NotFound("Task not found.")
        project_get_for_user(user=request.user, project_ref=task.project_id, min_role=Role.ADMIN)
        data = GoldInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        task = task_set_gold(task=task, gold_ranking=data.validated_data["gold_ranking"])
        return Response(GoldOutputSerializer(task).data)


urlpatterns = [
    # The contract spells these without a trailing slash; every route accepts both spellings.
    *api_path("projects/<project:project>/next-task/", NextTaskApi.as_view(), name="next-task"),
    *api_path("assignments/<id:assignment_id>/submit/", SubmitApi.as_view(), name="assignment-submit"),
    *api_path("assignments/<id:assignment_id>/skip/", SkipApi.as_view(), name="assignment-skip"),
    *api_path("assignments/<id:assignment_id>/heartbeat/", HeartbeatApi.as_view(), name="assignment-heartbeat"),
    *api_path("tasks/<id:task_id>/gold/", TaskGoldApi.as_view(), name="task-gold"),
    *api_path("markdown-preview/", PreviewApi.as_view(), name="markdown-preview"),
    *api_path("projects/<project:project>/next-review/", ReviewNextApi.as_view(), name="next-review"),
    *api_path("projects/<project:project>/demonstrations/<id:demonstration_id>/review/", ReviewApi.as_view(),
              name="demonstration-review"),
]
