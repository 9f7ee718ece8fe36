"""The annotator's home: their projects with progress."""
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.services.progress import project_progress_for_user


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/home.html", {"projects": project_progress_for_user(user=request.user)})
