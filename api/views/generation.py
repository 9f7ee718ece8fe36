"""API views for generation. Thin: validate, call one service or selector, serialize."""
from django.urls import path  # noqa: F401

urlpatterns: list = []
