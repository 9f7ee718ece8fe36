"""The project pages and who sees them: one list, read by the navigation bar of every project page.

A new area adds its page here (url name, label, lowest role) and renders with
`frontend.views.pages.render_project_page`; the bar then shows it to exactly the roles its view
admits (the view checks the same role through annotation.services.access).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.urls import reverse

from annotation.models import ROLE_RANK, Project, Role


@dataclass(frozen=True)
class ProjectPage:
    url_name: str  # in the "frontend" namespace, taking the project's slug
    label: str
    min_role: str
    applies: Callable[[Project], bool] | None = None  # None: every project has this page


PROJECT_PAGES: list[ProjectPage] = [
    ProjectPage("rank", "Rank", Role.ANNOTATOR),
    ProjectPage("review", "Review", Role.ANNOTATOR, applies=lambda project: project.review),
    ProjectPage("dashboard", "Dashboard", Role.ENGINEER),
    ProjectPage("generation-runs", "Generation runs", Role.ENGINEER),
    ProjectPage("tasks", "Tasks", Role.ENGINEER),
    ProjectPage("exports", "Exports", Role.ENGINEER),
    ProjectPage("training-jobs", "Training jobs", Role.ENGINEER),
    ProjectPage("rounds", "Rounds", Role.ENGINEER),
]


def project_nav(*, project: Project, role: str | None, active: str) -> list[dict]:
    """The project pages the role may open, as links; `active` is the url name of the page shown."""
    rank = ROLE_RANK.get(role or "", -1)
    return [
        {"label": page.label, "url": reverse(f"frontend:{page.url_name}", args=[project.slug]), "active": page.url_name == active,
         "key": page.url_name}
        for page in PROJECT_PAGES
        if rank >= ROLE_RANK[page.min_role] and (page.applies is None or page.applies(project))
    ]
