"""Web pages. Each area keeps its views in frontend/views/<area>.py; project pages are listed for the
navigation bar in frontend/nav.py."""
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

import api.routing  # noqa: F401  (registers the <id:...> converter: ids up to PostgreSQL's bigint)
from frontend.views import dashboard, exports, generation, home, ranking, rounds, tasks, training

app_name = "frontend"

urlpatterns = [
    path("", home.home, name="home"),
    # Browsers ask for /favicon.ico on pages without an icon link (the admin): answer it, no 404.
    path("favicon.ico", RedirectView.as_view(url=static("frontend/favicon.svg"), permanent=True)),
    path("login/", auth_views.LoginView.as_view(template_name="frontend/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("projects/<slug:slug>/rank/", ranking.rank_page, name="rank"),
    path("projects/<slug:slug>/review/", ranking.review_page, name="review"),
    path("projects/<slug:slug>/dashboard/", dashboard.dashboard_page, name="dashboard"),
    path("projects/<slug:slug>/generation/", generation.runs_page, name="generation-runs"),
    path("projects/<slug:slug>/generation/<id:run_id>/", generation.run_page, name="generation-run"),
    path("projects/<slug:slug>/generation/<id:run_id>/cancel/", generation.run_cancel, name="generation-run-cancel"),
    path("projects/<slug:slug>/tasks/", tasks.tasks_page, name="tasks"),
    path("projects/<slug:slug>/tasks/bulk/", tasks.tasks_bulk, name="tasks-bulk"),
    path("projects/<slug:slug>/tasks/<id:task_id>/", tasks.task_page, name="task"),
    path("projects/<slug:slug>/tasks/<id:task_id>/action/", tasks.task_action, name="task-action"),
    path("projects/<slug:slug>/exports/", exports.exports_page, name="exports"),
    path("projects/<slug:slug>/exports/<id:export_id>/", exports.export_page, name="export"),
    path("projects/<slug:slug>/training/", training.training_jobs_page, name="training-jobs"),
    path("projects/<slug:slug>/training/<id:job_id>/", training.training_job_page, name="training-job"),
    path("projects/<slug:slug>/rounds/", rounds.rounds_page, name="rounds"),
]
