"""Every API route, under /api/v1/. Each area keeps its own views module and urlpatterns."""
from django.urls import include, path

app_name = "api"

urlpatterns = [
    path("", include("api.views.projects")),
    path("", include("api.views.prompts")),
    path("", include("api.views.generation")),
    path("", include("api.views.judge")),
    path("", include("api.views.tasks")),
    path("", include("api.views.agreement")),
    path("", include("api.views.exports")),
    path("", include("api.views.training")),
    path("", include("api.views.webhooks")),
    path("", include("api.views.curation")),
    path("", include("api.views.evaluation")),
]
