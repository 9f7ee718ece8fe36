"""API views for prompts: paginated list (members) and file import (engineers and admins)."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import Prompt, Role
from annotation.services.access import project_get_for_user
from annotation.services.importing import detect_format, prompts_import
from api.pagination import PaginatedApiView
from api.routing import api_path
from api.serializers.prompts import PromptImportInputSerializer, PromptImportOutputSerializer, PromptOutputSerializer


class PromptListApi(PaginatedApiView):
    @extend_schema(operation_id="prompts_list", responses=PromptOutputSerializer(many=True))
    def get(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project)
        return self.paginated(Prompt.objects.filter(project=row).order_by("id"), PromptOutputSerializer)


class PromptImportApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="prompts_import",
        request={"multipart/form-data": PromptImportInputSerializer},
        responses={
            201: PromptImportOutputSerializer,
            400: OpenApiResponse(description="Bad file: error.line_errors lists every bad line; nothing was imported."),
        },
        description="Engineers and admins. All or nothing: a file with any bad line imports nothing.",
    )
    def post(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        data = PromptImportInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        file_format = detect_format(filename=upload.name, file_format=data.validated_data.get("file_format"))
        with upload.open("rb") as fileobj:
            result = prompts_import(project=row, fileobj=fileobj, file_format=file_format)
        return Response(PromptImportOutputSerializer(result.as_dict()).data, status=status.HTTP_201_CREATED)


urlpatterns = [
    *api_path("projects/<project:project>/prompts/", PromptListApi.as_view(), name="prompts"),
    *api_path("projects/<project:project>/prompts/import/", PromptImportApi.as_view(), name="prompts-import"),
]
