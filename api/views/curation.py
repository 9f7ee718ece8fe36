"""API views of the task browser and curation: engineers and admins read, admins change; annotators
get 403, other projects' tasks 404. Thin: parse, call one selector or service, serialize."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import ApplicationError
from annotation.models import Role
from annotation.services.access import project_get_for_user
from annotation.services.task_browse import (
    task_detail,
    task_filters_parse,
    task_get_for_user,
    task_request_more_rankings,
    task_set_excluded,
    task_set_priority,
    tasks_browse,
    tasks_bulk_apply,
)
from api.pagination import PaginatedApiView
from api.routing import api_path
from api.serializers.curation import (
    TaskBulkInputSerializer,
    TaskBulkOutputSerializer,
    TaskDetailSerializer,
    TaskExcludedInputSerializer,
    TaskListItemSerializer,
    TaskListQuerySerializer,
    TaskPriorityInputSerializer,
    TaskStateOutputSerializer,
)


class ProjectTaskListApi(PaginatedApiView):
    @extend_schema(
        operation_id="project_tasks_list",
        parameters=[TaskListQuerySerializer],
        responses=TaskListItemSerializer(many=True),
        description="The project's tasks, filtered and ordered (ordering=agreement: the least agreed first). "
        "A bad filter value is a 400 naming the parameter.",
    )
    def get(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        filters = task_filters_parse(params=request.query_params, project=row)
        return self.paginated(tasks_browse(project=row, filters=filters), TaskListItemSerializer)


class ProjectTaskBulkApi(APIView):
    @extend_schema(
        operation_id="project_tasks_bulk",
        request=TaskBulkInputSerializer,
        responses=TaskBulkOutputSerializer,
        description="Admins: apply one action to every task matching `filters` (the list's parameters): "
        "more_rankings (overlap + 1, reopening them), priority, exclude / include (from exports).",
    )
    def post(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ADMIN)
        data = TaskBulkInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        filters = task_filters_parse(params=data.validated_data["filters"], project=row)
        changed = tasks_bulk_apply(project=row, filters=filters, action=data.validated_data["action"],
                                   priority=data.validated_data.get("priority"))
        return Response(TaskBulkOutputSerializer({"action": data.validated_data["action"], "tasks": changed,
                                                  "filters": filters.as_params()}).data)


class TaskDetailApi(APIView):
    @extend_schema(operation_id="task_retrieve", responses=TaskDetailSerializer,
                   description="Everything said about one task. Annotators are named for admins, pseudonymous for engineers.")
    def get(self, request: Request, task_id: int) -> Response:
        task, role = task_get_for_user(user=request.user, task_id=task_id)
        return Response(TaskDetailSerializer(task_detail(task=task, role=role)).data)


class TaskMoreRankingsApi(APIView):
    @extend_schema(operation_id="task_more_rankings", request=None, responses=TaskStateOutputSerializer,
                   description="Admins: one more ranking wanted (overlap + 1), which reopens a complete task.")
    def post(self, request: Request, task_id: int) -> Response:
        task, _ = task_get_for_user(user=request.user, task_id=task_id, min_role=Role.ADMIN)
        return Response(TaskStateOutputSerializer(task_request_more_rankings(task=task)).data)


class TaskPriorityApi(APIView):
    @extend_schema(operation_id="task_set_priority", request=TaskPriorityInputSerializer, responses=TaskStateOutputSerializer)
    def post(self, request: Request, task_id: int) -> Response:
        task, _ = task_get_for_user(user=request.user, task_id=task_id, min_role=Role.ADMIN)
        if not isinstance(request.data, dict) or "priority" not in request.data:
            raise ApplicationError("Invalid priority.", fields={"priority": ["this field is required"]})
        return Response(TaskStateOutputSerializer(task_set_priority(task=task, priority=request.data["priority"])).data)


class TaskExcludedApi(APIView):
    @extend_schema(operation_id="task_set_excluded", request=TaskExcludedInputSerializer, responses=TaskStateOutputSerializer,
                   description="Admins: leave the task out of exports (true) or put it back (false).")
    def post(self, request: Request, task_id: int) -> Response:
        task, _ = task_get_for_user(user=request.user, task_id=task_id, min_role=Role.ADMIN)
        data = TaskExcludedInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(TaskStateOutputSerializer(task_set_excluded(task=task, excluded=data.validated_data["excluded"])).data)


urlpatterns = [
    *api_path("projects/<project:project>/tasks/", ProjectTaskListApi.as_view(), name="project-tasks"),
    *api_path("projects/<project:project>/tasks/bulk/", ProjectTaskBulkApi.as_view(), name="project-tasks-bulk"),
    *api_path("tasks/<id:task_id>/", TaskDetailApi.as_view(), name="task-detail"),
    *api_path("tasks/<id:task_id>/more-rankings/", TaskMoreRankingsApi.as_view(), name="task-more-rankings"),
    *api_path("tasks/<id:task_id>/priority/", TaskPriorityApi.as_view(), name="task-priority"),
    *api_path("tasks/<id:task_id>/excluded/", TaskExcludedApi.as_view(), name="task-excluded"),
]
