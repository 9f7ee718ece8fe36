"""Benchmark: import N prompts from a JSONL file through the import service into PostgreSQL.

Prints prompts per second and the importing process's peak memory (VmHWM), at N/10 and at N,
so you can see memory stays flat as the file grows. Uses its own database (created, migrated,
dropped unless --keep). Each size is imported twice in the same run: "before", the portable ORM
twin (PORTABLE_SQL=1: bulk_create, then the tasks built from the rows read back), and "after", the
PostgreSQL path (COPY of prompts, responses, tasks and task-response links); --no-before skips the first.
--without-fts adds a third run, "no-fts": the PostgreSQL path with the two full-text GIN indexes dropped (and
created again after), to show what maintaining them during the import costs.

Besides wall time (noisy on a shared machine) it prints the CPU seconds of the importing process
(all its threads) and of its PostgreSQL backend (from /proc, when the server runs on this machine):
those hardly move with the load average, and their sum against the wall time shows the overlap.

    .venv/bin/python bench/import.py                      # 100k prompts, no responses
    .venv/bin/python bench/import.py --prompts 100000 --responses 4 --no-before --without-fts
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
    from bench.memory import peak_rss_kb

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
    print(json.dumps({"seconds": seconds, "client_cpu": client, "server_cpu": server, "base_kb": base_kb, "peak_kb": peak_kb,
                      **result.as_dict()}))


def run_child(db_url: str, path: Path, slug: str, portable: bool = False) -> dict:
    env = {**os.environ, "DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "config.settings", "CELERY_BROKER_URL": "",
           "PORTABLE_SQL": "1" if portable else "0"}
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


def fts_indexes(db_url: str, *, present: bool) -> None:
    """Drop or create again the full-text GIN indexes (annotation.sql.curation) in the benchmark database."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DATABASE_URL"] = db_url
    import django

    django.setup()
    from annotation.sql.curation import create_indexes_sql, drop_indexes_sql

    for statement in create_indexes_sql() if present else drop_indexes_sql():
        admin_sql(db_url, statement, database=urlparse(db_url).path.lstrip("/"))


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
    parser.add_argument("--without-fts", action="store_true",
                        help="also run the PostgreSQL path with the full-text GIN indexes dropped ('no-fts')")
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
                names = (("after",) if args.no_before else ("before", "after")) + (("no-fts",) if args.without_fts else ())
                for path_name in names:
                    if path_name == "no-fts":
                        fts_indexes(args.database_url, present=False)
                    try:
                        r = run_child(args.database_url, path, f"bench-{n}-{path_name}", portable=path_name == "before")
                    finally:
                        if path_name == "no-fts":
                            fts_indexes(args.database_url, present=True)
                    assert r["prompts_created"] == n, r
                    rows.append((path_name, n, size_mb, r))
    finally:
        if not args.keep:
            admin_sql(args.database_url, f'DROP DATABASE IF EXISTS "{db_name}"')

    print(f"import benchmark: JSONL -> prompts_import -> PostgreSQL, {args.responses} ready-made responses per prompt")
    print("before: the portable ORM twin (PORTABLE_SQL=1); after: COPY of prompts, responses, tasks and links"
          + ("; no-fts: after, without the full-text GIN indexes" if args.without_fts else ""))
    print("client CPU: the importing process, all threads; server CPU: its PostgreSQL backend (blank: not on this machine)")
    print(f"{'path':>6} {'prompts':>9} {'file MB':>8} {'seconds':>8} {'prompts/s':>10} {'client CPU s':>12} {'server CPU s':>12} "
          f"{'tasks':>7} {'RSS before MB':>14} {'peak RSS MB':>12} {'growth MB':>10}")
    rate = {}
    for path_name, n, size_mb, r in rows:
        base, peak = r["base_kb"] / 1024, r["peak_kb"] / 1024
        rate[(path_name, n)] = n / r["seconds"]
        server = "" if r["server_cpu"] is None else f"{r['server_cpu']:.2f}"
        print(
            f"{path_name:>6} {n:>9} {size_mb:>8.1f} {r['seconds']:>8.2f} {n / r['seconds']:>10.0f} {r['client_cpu']:>12.2f} {server:>12} "
            f"{r['tasks_created']:>7} "
            f"{base:>14.1f} {peak:>12.1f} {peak - base:>10.1f}"
        )
    for (path_name, n), value in rate.items():
        if path_name == "after" and ("before", n) in rate:
            print(f"{n} prompts: after / before = {value / rate[('before', n)]:.1f}x")
        if path_name == "no-fts" and ("after", n) in rate:
            print(f"{n} prompts: no-fts / after = {value / rate[('after', n)]:.1f}x")
    print(f"cpus: {os.cpu_count()}, load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"reproduce: .venv/bin/python bench/import.py --prompts {args.prompts} --responses {args.responses}"
          f"{' --no-before' if args.no_before else ''}{' --without-fts' if args.without_fts else ''}"
          f"{'' if args.database_url == DEFAULT_DB else ' --database-url ' + args.database_url}")


if __name__ == "__main__":
    main()
