"""Benchmark the task browser: the ten most contested tasks of a 100k-task project, via the API.

Writes a throwaway project of N tasks x K responses (four INSERT ... SELECT statements:
tests/curation/scale.py), then times, through the API view (DRF request, access check,
pagination, serializer), `GET /api/v1/projects/{id}/tasks?ordering=agreement&limit=10`, the same
with a full-text `q`, a deep page of the newest-first list, and `GET /api/v1/tasks/{id}` of each of
the ten; prints the statement's plan (EXPLAIN ANALYZE) and the command. The project is deleted
afterwards unless --keep. PostgreSQL only.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/ann_curation .venv/bin/python bench/curation.py
    ... bench/curation.py --tasks 20000 --repeat 50
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def timed(call, repeat: int) -> tuple[float, float, object]:
    """(first call's seconds, median of the next `repeat`, last result)."""
    start = time.perf_counter()
    result = call()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the project (its slug is printed)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection, transaction
    from rest_framework.test import APIRequestFactory, force_authenticate

    from annotation.models import Project, Role
    from annotation.services.projects import membership_add, project_create, user_create
    from annotation.services.task_browse import task_filters_parse, tasks_browse
    from api.views.curation import ProjectTaskListApi, TaskDetailApi
    from tests.curation.scale import big_project_fill

    if connection.vendor != "postgresql":
        sys.exit("bench/curation.py needs PostgreSQL (DATABASE_URL=postgresql://...)")
    stamp = str(int(time.time()))
    admin = user_create(username=f"bench-curation-{stamp}", password=f"pw-{stamp}-pw").user
    project = project_create(name=f"Bench curation {stamp}", created_by=admin)
    membership_add(project=project, user=admin, role=Role.ADMIN)
    start = time.perf_counter()
    big_project_fill(project_id=project.pk, tasks=args.tasks, k=args.k)
    print(f"built {args.tasks} tasks x {args.k} responses in {time.perf_counter() - start:.1f} s")

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # the request factory's host
    factory, list_view, detail_view = APIRequestFactory(), ProjectTaskListApi.as_view(), TaskDetailApi.as_view()

    def get_list(**params):
        request = factory.get(f"/api/v1/projects/{project.pk}/tasks", params)
        force_authenticate(request, user=admin)
        response = list_view(request, project=str(project.pk))
        assert response.status_code == 200, response.data
        return response.data

    def get_detail(task_id: int):
        request = factory.get(f"/api/v1/tasks/{task_id}")
        force_authenticate(request, user=admin)
        response = detail_view(request, task_id=task_id)
        assert response.status_code == 200, response.data
        return response.data

    try:
        cases = [
            ("ten most contested (ordering=agreement&limit=10)", {"ordering": "agreement", "limit": 10}),
            ("contested among complete, not gold", {"ordering": "agreement", "status": "complete", "gold": "false", "limit": 10}),
            ("full-text q=planets, least agreed first", {"q": "planets", "ordering": "agreement", "limit": 10}),
            # A word in every response: one union subquery (sql/curation.py), not an OR of two probed per row.
            ("full-text q=answer (every task), least agreed first", {"q": "answer", "ordering": "agreement", "limit": 10}),
            ("newest first, offset 50000, limit 100", {"ordering": "-created_at", "offset": 50_000, "limit": 100}),
            ("agreement_lt=0.05 by priority, limit 100", {"agreement_lt": "0.05", "ordering": "-priority", "limit": 100}),
        ]
        print(f"\nAPI list, {args.repeat} repeats after a first call (seconds):")
        ten = None
        for label, params in cases:
            first, median, data = timed(lambda params=params: get_list(**params), args.repeat)
            ten = ten or data
            print(f"  {label:52s} first {first:.4f}  median {median:.4f}  matching {data['count']}")
        ids = [row["id"] for row in ten["results"]]
        print("\nthe ten most contested:", ", ".join(f"{row['id']} ({row['agreement']})" for row in ten["results"]))
        first, median, _ = timed(lambda: [get_detail(task_id) for task_id in ids], max(1, args.repeat // 4))
        print(f"GET /api/v1/tasks/{{id}} of all ten: first {first:.4f} s, median {median:.4f} s")

        filters = task_filters_parse(params={"ordering": "agreement"}, project=project)
        sql, params = tasks_browse(project=project, filters=filters)[:10].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            print("\nplan of the page query (ordering=agreement, limit 10):")
            for (line,) in cursor.fetchall():
                print("  " + line)
    finally:
        if not args.keep:
            start = time.perf_counter()
            with transaction.atomic():
                Project.objects.filter(pk=project.pk).delete()
                admin.delete()
            print(f"\ndeleted the project in {time.perf_counter() - start:.1f} s")
        else:
            print(f"\nkept project {project.slug} (id {project.pk})")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs")
    print("command: DATABASE_URL=... .venv/bin/python bench/curation.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
