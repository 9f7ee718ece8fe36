"""A URLconf for the error-page tests: the project's routes plus a page and an API view that crash."""
from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401  (the handlers under test)
from config.urls import urlpatterns as project_urlpatterns


class Crash(Exception):
    pass


def crashing_page(request: HttpRequest) -> HttpResponse:
    raise Crash("a bug in a page, with a secret in its message: hunter2")


class CrashingApi(APIView):
    def get(self, request: Request) -> Response:
        raise Crash("a bug in an API view, with a secret in its message: hunter2")


urlpatterns = [
    path("crash/", crashing_page),
    path("api/v1/crash/", CrashingApi.as_view()),
    *project_urlpatterns,
]
