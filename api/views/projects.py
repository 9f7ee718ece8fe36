"""API views for projects and their members. Thin: validate, call one service or selector, serialize.

Projects are fetched through access.project_get_for_user: non-members get 404, too-low roles 403.
"""
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import ApplicationError, Forbidden
from annotation.models import Role
from annotation.services.access import project_and_role_get_for_user, project_get_for_user, projects_for_user
from annotation.services.priority import project_priority_progress, project_priority_set
from annotation.services.projects import (
    membership_add,
    membership_remove,
    memberships_of_project,
    project_create,
    user_get,
)
from api.pagination import PaginatedApiView
from api.routing import api_path
from api.serializers.projects import (
    MemberAddInputSerializer,
    MemberOutputSerializer,
    MemberUpdateInputSerializer,
    PriorityInputSerializer,
    PriorityOutputSerializer,
    ProjectCreateInputSerializer,
    ProjectOutputSerializer,
)


class ProjectListCreateApi(PaginatedApiView):
    @extend_schema(operation_id="projects_list", responses=ProjectOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return self.paginated(projects_for_user(user=request.user).order_by("id"), ProjectOutputSerializer)

    @extend_schema(
        operation_id="projects_create",
        request=ProjectCreateInputSerializer,
        responses={201: ProjectOutputSerializer},
        description="Staff accounts only. The creator becomes the project's admin.",
    )
    def post(self, request: Request) -> Response:
        if not request.user.is_staff:
            raise Forbidden("Creating projects needs a staff account.")
        data = ProjectCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = project_create(created_by=request.user, **data.validated_data)
        # The creator is the project's admin.
        return Response(ProjectOutputSerializer(project, context={"role": Role.ADMIN}).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    @extend_schema(
        operation_id="projects_retrieve",
        responses=ProjectOutputSerializer,
        description="Generation settings (model, system prompt, sampling) are shown to engineers and admins only.",
    )
    def get(self, request: Request, project: str) -> Response:
        row, role = project_and_role_get_for_user(user=request.user, project_ref=project)
        return Response(ProjectOutputSerializer(row, context={"role": role}).data)


class MemberListAddApi(APIView):
    @extend_schema(operation_id="project_members_list", responses=MemberOutputSerializer(many=True))
    def get(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ADMIN)
        return Response(MemberOutputSerializer(memberships_of_project(project=row), many=True).data)

    @extend_schema(
        operation_id="project_members_add",
        request=MemberAddInputSerializer,
        responses={201: MemberOutputSerializer},
        description="Admins only. Adds an existing user, or changes their role if already a member.",
    )
    def post(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ADMIN)
        data = MemberAddInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            user = user_get(username=data.validated_data["username"])
        except ApplicationError as exc:
            raise ApplicationError(exc.message, fields={"username": ["no such user"]}) from exc
        membership = membership_add(project=row, user=user, role=data.validated_data["role"])
        return Response(MemberOutputSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(APIView):
    def _member(self, request: Request, project: str, user_id: int):
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ADMIN)
        membership = memberships_of_project(project=row).filter(user_id=user_id).first()
        if membership is None:
            raise ApplicationError("This user is not a member of the project.", code="not_found", status=404)
        return row, membership

    @extend_schema(operation_id="project_members_update", request=MemberUpdateInputSerializer, responses=MemberOutputSerializer)
    def patch(self, request: Request, project: str, user_id: int) -> Response:
        row, membership = self._member(request, project, user_id)
        data = MemberUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = membership_add(project=row, user=membership.user, role=data.validated_data["role"])
        return Response(MemberOutputSerializer(membership).data)

    @extend_schema(operation_id="project_members_remove", responses={204: None})
    def delete(self, request: Request, project: str, user_id: int) -> Response:
        row, membership = self._member(request, project, user_id)
        membership_remove(project=row, user=membership.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProjectPriorityApi(APIView):
    @extend_schema(operation_id="project_priority_retrieve", responses=PriorityOutputSerializer,
                   description="Engineers and admins: the serving order and the progress of its scoring.")
    def get(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        return Response(PriorityOutputSerializer(project_priority_progress(project=row)).data)

    @extend_schema(operation_id="project_priority_set", request=PriorityInputSerializer, responses=PriorityOutputSerializer,
                   description="Admins only. uncertainty: serve first the tasks the reward model separates least "
                               "(scored by a Celery task on the generation queue); fifo: today's order.")
    def put(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ADMIN)
        data = PriorityInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = project_priority_set(project=row, **data.validated_data)
        return Response(PriorityOutputSerializer(project_priority_progress(project=row)).data)


urlpatterns = [
    *api_path("projects/", ProjectListCreateApi.as_view(), name="projects"),
    *api_path("projects/<project:project>/", ProjectDetailApi.as_view(), name="project-detail"),
    *api_path("projects/<project:project>/members/", MemberListAddApi.as_view(), name="project-members"),
    *api_path("projects/<project:project>/priority/", ProjectPriorityApi.as_view(), name="project-priority"),
    *api_path("projects/<project:project>/members/<id:user_id>/", MemberDetailApi.as_view(), name="project-member-detail"),
]
