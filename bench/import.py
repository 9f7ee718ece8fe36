"""Benchmark: import N prompts from a JSONL file through the import service into PostgreSQL.

Prints prompts per second and the importing process's peak memory (VmHWM), at N/10 and at N,
so you can see memory stays flat as the file grows. Uses its own database (created, migrated,
dropped unless --keep). Each size is imported twice in the same run: "before", the portable ORM
twin (PORTABLE_SQL=1: bulk_create, then the tasks built from the rows read back), and "after", the
PostgreSQL path (COPY of prompts, responses, tasks and task-response links); --no-before skips the first.
With responses, "after" defers their full-text vectors (annotation.services.response_search) and the
child then runs the fill itself, timed apart ("fill": what a worker does after the import's commit);
--immediate adds a run, "immediate", of the same path with IMPORT_DEFER_SEARCH_VECTORS=0, i.e. the
vectors computed inside the import as before the deferral.

Besides wall time (noisy on a shared machine) it prints the CPU seconds of the importing process
(all its threads) and of its PostgreSQL backend (from /proc, when the server runs on this machine):
those hardly move with the load average, and their sum against the wall time shows the overlap.

    .venv/bin/python bench/import.py                      # 100k prompts, no responses
    .venv/bin/python bench/import.py --prompts 100000 --responses 4 --no-before --immediate
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/annot_bench_import"
WORDS = ["explain", "how", "why", "what", "the", "a", "of", "to", "in", "model", "data", "python", "write", "short", "story", "about", "list", "compare", "best", "way", "should", "I", "would", "you", "please", "give", "three", "examples", "summary", "difference", "between", "learn", "code", "error", "fix"]


def write_file(path: Path, n: int, responses: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 60)))
            record = {"id": f"bench-{i}", "prompt": f"{text} #{i}?", "metadata": {"source": "bench", "i": i}}
            if responses:
                record["responses"] = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120))) for _ in range(responses)]
            f.write(json.dumps(record) + "\n")


def backend_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of a local PostgreSQL backend; None when it is not on this machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
    return usage.ru_utime + usage.ru_stime


def child(path: str, slug: str) -> None:
    """Runs in its own process so its peak RSS is the import's alone."""
    import django

    django.setup()
    from django.db import connection

    from annotation.services.importing import prompts_import
    from annotation.services.projects import project_create
    from annotation.services.response_search import bulk_load_settle
    from bench.memory import peak_rss_kb
    from config.celery import app

    project = project_create(name=slug, slug=slug)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    base_kb = peak_rss_kb()
    server0, client0 = backend_cpu(backend), process_cpu()
    start = time.perf_counter()
    with open(path, "rb") as fileobj:
        result = prompts_import(project=project, fileobj=fileobj, file_format="jsonl")
    seconds = time.perf_counter() - start
    client, server1 = process_cpu() - client0, backend_cpu(backend)
    server = None if server0 is None or server1 is None else server1 - server0
    peak_kb = peak_rss_kb()
    # What a worker does after the commit (the message the import sent waits on a broker nobody reads).
    app.control.purge()
    start = time.perf_counter()
    filled = bulk_load_settle(analyze=True)  # the worker's task after a large import: the fill, then ANALYZE
    fill_seconds = time.perf_counter() - start
    server2 = backend_cpu(backend)
    fill_server = None if server1 is None or server2 is None else server2 - server1
    print(json.dumps({"seconds": seconds, "client_cpu": client, "server_cpu": server, "base_kb": base_kb, "peak_kb": peak_kb,
                      "filled": filled, "fill_seconds": fill_seconds, "fill_server_cpu": fill_server, **result.as_dict()}))


def run_child(db_url: str, path: Path, slug: str, *, portable: bool = False, immediate: bool = False, broker: str) -> dict:
    # A broker with no worker: the import's fill message waits there (the child purges it and fills itself).
    env = {**os.environ, "DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "config.settings", "CELERY_BROKER_URL": broker,
           "PORTABLE_SQL": "1" if portable else "0", "IMPORT_DEFER_SEARCH_VECTORS": "0" if immediate else "1"}
    env.pop("DEBUG", None)  # DEBUG would record every query and grow memory
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), slug], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        sys.exit(f"import failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def admin_sql(db_url: str, sql: str, *, database: str = "postgres") -> None:
    import psycopg

    parsed = urlparse(db_url)
    with psycopg.connect(db_url.replace(parsed.path, f"/{database}"), autocommit=True) as conn:
        conn.execute(sql)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, str(ROOT))
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--responses", type=int, default=0, help="ready-made responses per prompt (tasks are created)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--no-before", action="store_true", help="skip the portable ORM twin's run (the 'before')")
    parser.add_argument("--immediate", action="store_true",
                        help="also run the PostgreSQL path with the responses' vectors computed in the import ('immediate')")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/15",
                        help="a Celery broker no worker reads (the import's fill message is purged from it)")
    args = parser.parse_args()

    db_name = urlparse(args.database_url).path.lstrip("/")
    admin_sql(args.database_url, f'DROP DATABASE IF EXISTS "{db_name}"')
    admin_sql(args.database_url, f'CREATE DATABASE "{db_name}"')
    env = {**os.environ, "DATABASE_URL": args.database_url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)

    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in sorted({max(1, args.prompts // 10), args.prompts}):
                path = Path(tmp) / f"prompts-{n}.jsonl"
                write_file(path, n, args.responses)
                size_mb = path.stat().st_size / 1e6
                names = (("after",) if args.no_before else ("before", "after")) + (("immediate",) if args.immediate else ())
                for path_name in names:
                    r = run_child(args.database_url, path, f"bench-{n}-{path_name}", portable=path_name == "before",
                                  immediate=path_name == "immediate", broker=args.broker)
                    assert r["prompts_created"] == n, r
                    rows.append((path_name, n, size_mb, r))
    finally:
        if not args.keep:
            admin_sql(args.database_url, f'DROP DATABASE IF EXISTS "{db_name}"')

    print(f"import benchmark: JSONL -> prompts_import -> PostgreSQL, {args.responses} ready-made responses per prompt")
    print("before: the portable ORM twin (PORTABLE_SQL=1); after: COPY of prompts, responses, tasks and links, the responses'"
          " full-text vectors deferred to the fill" + ("; immediate: after, with those vectors computed in the import" if args.immediate else ""))
    print("fill: the deferred vectors computed afterwards, then ANALYZE of the loaded tables (a worker's job once the import"
          " has committed; searches are answered meanwhile)")
    print("client CPU: the importing process, all threads; server CPU: its PostgreSQL backend (blank: not on this machine)")
    print(f"{'path':>9} {'prompts':>9} {'file MB':>8} {'seconds':>8} {'prompts/s':>10} {'client CPU s':>12} {'server CPU s':>12} "
          f"{'tasks':>7} {'RSS before MB':>14} {'peak RSS MB':>12} {'growth MB':>10} {'fill s':>7} {'fill server CPU s':>17}")
    rate = {}
    for path_name, n, size_mb, r in rows:
        base, peak = r["base_kb"] / 1024, r["peak_kb"] / 1024
        rate[(path_name, n)] = n / r["seconds"]
        server = "" if r["server_cpu"] is None else f"{r['server_cpu']:.2f}"
        fill_server = "" if r["fill_server_cpu"] is None else f"{r['fill_server_cpu']:.2f}"
        fill = f"{r['fill_seconds']:>7.2f} {fill_server:>17}" if r["filled"] else f"{'-':>7} {'':>17}"
        print(
            f"{path_name:>9} {n:>9} {size_mb:>8.1f} {r['seconds']:>8.2f} {n / r['seconds']:>10.0f} {r['client_cpu']:>12.2f} {server:>12} "
            f"{r['tasks_created']:>7} "
            f"{base:>14.1f} {peak:>12.1f} {peak - base:>10.1f} {fill}"
        )
    for (path_name, n), value in rate.items():
        if path_name == "after" and ("before", n) in rate:
            print(f"{n} prompts: after / before = {value / rate[('before', n)]:.1f}x")
        if path_name == "immediate" and ("after", n) in rate:
            print(f"{n} prompts: after / immediate = {rate[('after', n)] / value:.2f}x")
    print(f"cpus: {os.cpu_count()}, load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"reproduce: .venv/bin/python bench/import.py --prompts {args.prompts} --responses {args.responses}"
          f"{' --no-before' if args.no_before else ''}{' --immediate' if args.immediate else ''}"
          f"{'' if args.database_url == DEFAULT_DB else ' --database-url ' + args.database_url}")


if __name__ == "__main__":
    main()
