"""The rounds page (engineers and admins): each round's policy and lineage, figures and head-to-head result.

Everything comes from annotation.services.rounds (the command `rounds` prints the same).
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from annotation.models import Role
from annotation.services.rounds import rounds_of_project
from frontend.views.pages import project_for_page, render_project_page


@login_required
def rounds_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = project_for_page(request, slug, min_role=Role.ENGINEER)
    # The page never loads a reward model: it shows the mean rewards the `rounds` command computed (cached).
    result = rounds_of_project(project=project, reward_cached_only=True)
    return render_project_page(request, "frontend/rounds/list.html", project=project, role=role, active="rounds",
                               context={"result": result, "rounds": result["rounds"]})
