"""Web pages. Each area keeps its views in frontend/views/<area>.py."""
from django.contrib.auth import views as auth_views
from django.urls import path

import api.routing  # noqa: F401  (registers the <id:...> converter: ids up to PostgreSQL's bigint)
from frontend.views import dashboard, home, ranking, training

app_name = "frontend"

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="frontend/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("projects/<slug:slug>/rank/", ranking.rank_page, name="rank"),
    path("projects/<slug:slug>/dashboard/", dashboard.dashboard_page, name="dashboard"),
    path("projects/<slug:slug>/training/", training.training_jobs_page, name="training-jobs"),
    path("projects/<slug:slug>/training/<id:job_id>/", training.training_job_page, name="training-job"),
]
