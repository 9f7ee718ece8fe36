from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

import api.routing  # noqa: F401  (registers the <project:...> and <id:...> path converters)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its init script as a file and our template moves its inline <style> into one,
    # so Swagger UI runs under the Content-Security-Policy (nothing inline).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="frontend/swagger_ui.html"), name="api-docs"),
    path("", include("frontend.urls")),
]

# Under /api/ the error shape, elsewhere a styled page without a traceback (api.error_views).
handler400 = "api.error_views.bad_request"
handler403 = "api.error_views.permission_denied"
handler404 = "api.error_views.page_not_found"
handler500 = "api.error_views.server_error"
