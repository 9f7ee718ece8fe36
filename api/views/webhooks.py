"""API views for webhooks (project admins only). Thin: validate, call one service or selector, serialize.

Non-members get 404 for a project or a webhook of it, engineers and annotators 403; a webhook of
another project is 404 even to an admin of this one.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import Role
from annotation.services.access import project_get_for_user
from annotation.services.webhooks import (
    webhook_create,
    webhook_delete,
    webhook_deliveries_of,
    webhook_get,
    webhooks_of_project,
)
from api.pagination import PaginatedApiView
from api.routing import api_path
from api.serializers.webhooks import (
    WebhookCreatedOutputSerializer,
    WebhookCreateInputSerializer,
    WebhookDeliveryOutputSerializer,
    WebhookOutputSerializer,
)


class WebhookListCreateApi(PaginatedApiView):
    @extend_schema(operation_id="project_webhooks_list", responses=WebhookOutputSerializer(many=True))
    def get(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ADMIN)
        return self.paginated(webhooks_of_project(project=row), WebhookOutputSerializer)

    @extend_schema(
        operation_id="project_webhooks_create",
        request=WebhookCreateInputSerializer,
        responses={201: WebhookCreatedOutputSerializer},
        description="Registers a webhook; the answer shows its secret, which is never shown again.",
    )
    def post(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ADMIN)
        data = request.data.dict() if hasattr(request.data, "dict") else request.data  # form posts: QueryDict
        webhook = webhook_create(project=row, data=data, created_by=request.user)
        return Response(WebhookCreatedOutputSerializer(webhook).data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(APIView):
    @extend_schema(operation_id="project_webhooks_retrieve", responses=WebhookOutputSerializer)
    def get(self, request: Request, project: str, webhook_id: int) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ADMIN)
        return Response(WebhookOutputSerializer(webhook_get(project=row, webhook_id=webhook_id)).data)

    @extend_schema(operation_id="project_webhooks_destroy", responses={204: None})
    def delete(self, request: Request, project: str, webhook_id: int) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ADMIN)
        webhook_delete(webhook=webhook_get(project=row, webhook_id=webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveriesApi(PaginatedApiView):
    @extend_schema(
        operation_id="project_webhook_deliveries_list",
        parameters=[OpenApiParameter("status", str, enum=["pending", "delivered", "failed"], description="Only these.")],
        responses=WebhookDeliveryOutputSerializer(many=True),
    )
    def get(self, request: Request, project: str, webhook_id: int) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ADMIN)
        webhook = webhook_get(project=row, webhook_id=webhook_id)
        rows = webhook_deliveries_of(webhook=webhook, status=request.query_params.get("status"))
        return self.paginated(rows, WebhookDeliveryOutputSerializer)


urlpatterns = [
    *api_path("projects/<project:project>/webhooks/", WebhookListCreateApi.as_view(), name="project-webhooks"),
    *api_path("projects/<project:project>/webhooks/<id:webhook_id>/", WebhookDetailApi.as_view(), name="project-webhook-detail"),
    *api_path("projects/<project:project>/webhooks/<id:webhook_id>/deliveries/", WebhookDeliveriesApi.as_view(),
              name="project-webhook-deliveries"),
]
