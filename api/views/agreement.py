"""API views for agreement. Thin: validate, call one service or selector, serialize."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import Role
from annotation.services.access import project_get_for_user
from annotation.services.agreement import project_agreement_compute
from annotation.services.agreement_cache import agreement_report_get, agreement_report_refresh
from annotation.services.ranking_filter import RankingFilter, ranking_filter_resolve
from api.routing import api_path
from api.serializers.agreement import AgreementQuerySerializer, AgreementReportSerializer


class AgreementApi(APIView):
    @extend_schema(
        operation_id="project_agreement",
        parameters=[AgreementQuerySerializer],
        responses={
            200: AgreementReportSerializer,
            400: OpenApiResponse(description="Bad filter: error.fields names it."),
            403: OpenApiResponse(description="Annotators may not see agreement."),
            404: OpenApiResponse(description="No such project, or not a member."),
        },
        description="Engineers and admins. Without filters: the cached report (see `cache`); with filters: computed now.",
    )
    def get(self, request: Request, project: str) -> Response:
        row = project_get_for_user(user=request.user, project_ref=project, min_role=Role.ENGINEER)
        query = AgreementQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        args = query.validated_data
        filters = ranking_filter_resolve(project=row, ranking_filter=RankingFilter.from_data(args))
        if not filters.is_empty:
            report = project_agreement_compute(project=row, filters=filters)
        else:
            if args["refresh"]:
                agreement_report_refresh(project_id=row.pk)
            report = agreement_report_get(project=row)
        return Response(AgreementReportSerializer(report).data)


urlpatterns = [
    *api_path("projects/<project:project>/agreement/", AgreementApi.as_view(), name="project-agreement"),
]
