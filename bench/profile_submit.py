"""Profile the annotator's two requests (next-task, submit) of one checkout in process, through Django's test client.

Run it from the root of the checkout to profile (its code is imported), against a database that
bench/serving.py of that checkout has seeded (its project "serving-bench" and annotators bench-ann-*):

    cd ../b15_main && .venv/bin/python ../bench15/bench/profile_submit.py \
        --database-url postgresql://postgres@127.0.0.1:5432/ann_b15_serving_main --requests 300

It warms up (--warmup pairs), then times --requests next-task + submit pairs with time.perf_counter, profiles the
submits with cProfile (the next-tasks run outside the profiler), and captures the SQL of one submit and one
next-task (CaptureQueriesContext). It prints mean/median wall per request, the statements, and the project's
functions by cumulative time per submit; --stats FILE keeps the pstats for a comparison between checkouts.
Same settings as bench/serving.py's server: DEBUG=0, no broker (the agreement refresh only marks the report stale).
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path.cwd()
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--stats", help="write the submits' pstats here")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--next", action="store_true",
                        help="profile submit?next=true (one request per ranking) instead of the next-task + submit pair")
    args = parser.parse_args()
    os.environ.update(DATABASE_URL=args.database_url, DJANGO_SETTINGS_MODULE="config.settings", DEBUG="0", SECURE_SSL_REDIRECT="0",
                      ALLOWED_HOSTS="127.0.0.1,localhost,testserver", LOG_LEVEL="ERROR", CELERY_BROKER_URL="")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from rest_framework.authtoken.models import Token

    from annotation.models import Project

    project = Project.objects.get(slug="serving-bench")
    # the last bench annotator: bench/serving.py uses it only for its warm-up
    key = Token.objects.filter(user__username__startswith="bench-ann-").order_by("-user_id").values_list("key", flat=True)[0]
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    next_url = f"/api/v1/projects/{project.pk}/next-task"

    cpu: list[tuple[float, float]] = []  # process CPU time of each next-task and submit (less load-sensitive than wall)

    held: dict = {}  # --next: the assignment the previous submit?next=true answered

    def pair(profiler: cProfile.Profile | None = None, capture: bool = False) -> tuple[float, float, list, list]:
        nq: list = []
        sq: list = []
        c0 = time.process_time()
        t0 = time.perf_counter()
        if args.next and held.get("task"):
            response = None
        elif capture:
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(next_url)
            nq = ctx.captured_queries
        else:
            response = client.get(next_url)
        t1 = time.perf_counter()
        c1 = time.process_time()
        if response is None:
            task = held.pop("task")
        elif response.status_code != 200:
            sys.exit(f"next-task answered {response.status_code}: {response.content[:300]!r}")
        else:
            task = response.json()
        body = json.dumps({"ranking": [[r["id"]] for r in task["responses"]], "duration_seconds": 2.0})
        url = f"/api/v1/assignments/{task['id']}/submit" + ("?next=true" if args.next else "")
        headers = {"HTTP_IDEMPOTENCY_KEY": f"prof-{uuid.uuid4().hex}"}
        c2 = time.process_time()
        t2 = time.perf_counter()
        if profiler:
            profiler.enable()
        if capture:
            with CaptureQueriesContext(connection) as ctx:
                response = client.post(url, body, content_type="application/json", **headers)
            sq = ctx.captured_queries
        else:
            response = client.post(url, body, content_type="application/json", **headers)
        if profiler:
            profiler.disable()
        t3 = time.perf_counter()
        c3 = time.process_time()
        if response.status_code != 201:
            sys.exit(f"submit answered {response.status_code}: {response.content[:300]!r}")
        if args.next:
            held["task"] = response.json()["next"]
        cpu.append(((c1 - c0) * 1000, (c3 - c2) * 1000))
        return (t1 - t0) * 1000, (t3 - t2) * 1000, nq, sq

    for _ in range(args.warmup):
        pair()
    _, _, next_queries, submit_queries = pair(capture=True)
    # timing without the profiler, then the profile (cProfile's own overhead inflates its times)
    cpu.clear()
    timed = [pair() for _ in range(args.requests)]
    next_cpu = [c[0] for c in cpu]
    submit_cpu = [c[1] for c in cpu]
    profiler = cProfile.Profile()
    for _ in range(args.requests):
        pair(profiler)
    next_ms = [t[0] for t in timed]
    submit_ms = [t[1] for t in timed]
    load = os.getloadavg()[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    print(f"checkout {ROOT} ({commit}), load average {load:.2f}, {args.requests} pairs")
    print(f"next-task: mean {statistics.fmean(next_ms):.2f} ms, median {statistics.median(next_ms):.2f} ms; "
          f"submit: mean {statistics.fmean(submit_ms):.2f} ms, median {statistics.median(submit_ms):.2f} ms (test client, no HTTP)")
    print(f"CPU of this process: next-task mean {statistics.fmean(next_cpu):.2f} ms, submit mean {statistics.fmean(submit_cpu):.2f} ms")
    print(json.dumps({"next_ms": round(statistics.median(next_ms), 2), "submit_ms": round(statistics.median(submit_ms), 2),
                      "next_cpu_ms": round(statistics.fmean(next_cpu), 2), "submit_cpu_ms": round(statistics.fmean(submit_cpu), 2),
                      "next_sql": len(next_queries), "submit_sql": len(submit_queries), "load": round(load, 2)}))
    for name, queries in (("next-task", next_queries), ("submit", submit_queries)):
        print(f"\n{name}: {len(queries)} SQL statements")
        for i, q in enumerate(queries, 1):
            sql = " ".join(q["sql"].split())
            print(f"  {i:2}. [{q['time']} s] {sql[:230]}{' ...' if len(sql) > 230 else ''}")
    stats = pstats.Stats(profiler)
    if args.stats:
        stats.dump_stats(args.stats)
    total = sum(tt for (_, _, tt, _, _) in stats.stats.values())  # type: ignore[attr-defined]
    print(f"\nsubmit under cProfile: {1000 * total / args.requests:.2f} ms per submit (profiled); project functions by cumulative time per submit:")
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        if str(ROOT) in file and "/.venv/" not in file:
            rows.append((ct, tt, nc, f"{Path(file).relative_to(ROOT)}:{line}({func})"))
    for ct, tt, nc, name in sorted(rows, reverse=True)[: args.top]:
        print(f"  {1000 * ct / args.requests:8.3f} ms cum {1000 * tt / args.requests:7.3f} ms own {nc / args.requests:6.1f} calls  {name}")


if __name__ == "__main__":
    main()
