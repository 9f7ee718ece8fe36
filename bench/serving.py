"""Benchmark the next-task engine as annotators meet it: gunicorn + PostgreSQL, HTTP API, many annotators.

Seeds a project of --tasks ranking tasks (default 100k, K=3, overlap 3) into its own PostgreSQL
database by COPY, starts gunicorn (gthread) on it, and drives simulated annotators over HTTP
(keep-alive connections, token auth; next-task, then submit, in a loop):

- saturation: --saturation-annotators (50) with no pause: completed submissions per second and
  tasks brought to their full overlap per second, with p50/p95/p99 of next-task and submit;
- realistic: --realistic-annotators (200), each pausing a random 1 to 3 s before every request
  (about 100 requests per second offered): latency percentiles;
- tabs: one annotator in ten parallel sessions (ten connections, one token);
- saturation-next, tabs-next: the same with one request per ranking (submit?next=true answers the
  next assignment; next-task only to start and after a 409), so the two are compared in one run.
- any of them with "@unprepared" (e.g. saturation@unprepared): against a server started with
  PREPARED_STATEMENTS=0 (the hot paths' statements parsed and planned on every run, as before they
  were prepared), or "@live-render": PRERENDERED_HTML=0 (every lease renders its Markdown, as before
  it was rendered ahead of time), or "@before": both off; the server is restarted when the next
  scenario needs other settings, and the ratio to the plain scenario is printed from the medians
  (and saturation-next's to each saturation variant: one request per ranking against two).

Before measuring, the seeded tasks' Markdown is rendered ahead of time, as a worker does after an
import (services/prerender.py; idempotent, so a seeded database renders only what it lacks).

After each scenario it checks the invariants in the database: no task above its overlap, counters
equal to the rows they count, no annotator twice on a task, no two rankings of one task by one
annotator, every accepted (201) submission stored and nothing else. It ends with EXPLAIN ANALYZE
of the claim. The load generator, gunicorn and PostgreSQL share the machine.

    .venv/bin/python bench/serving.py                       # full scale
    .venv/bin/python bench/serving.py --tasks 5000 --duration 10 --realistic-annotators 40   # quick
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/annot_bench_serving"
SLUG = "serving-bench"
sys.path.insert(0, str(ROOT))


# ------------------------------------------------------------------------------------ database


def ensure_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


# A scenario's "@variant": the settings its server starts with (the plain scenario: every one on).
VARIANTS: dict[str, dict[str, str]] = {
    "": {"PREPARED_STATEMENTS": "1", "PRERENDERED_HTML": "1"},
    "unprepared": {"PREPARED_STATEMENTS": "0", "PRERENDERED_HTML": "1"},
    "live-render": {"PREPARED_STATEMENTS": "1", "PRERENDERED_HTML": "0"},
    "before": {"PREPARED_STATEMENTS": "0", "PRERENDERED_HTML": "0"},  # the hot path before either
}


def server_env(url: str, variant: str = "") -> dict[str, str]:
    env = dict(os.environ)
    env.update(VARIANTS[variant])
    env.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="ERROR",  # 409s are expected in the tabs scenario; logging each costs CPU
        CELERY_BROKER_URL="",  # agreement refresh: marks the cached report stale, enqueues nothing
        # The engine is measured, not the per-user request rate: ten fast tabs of one annotator pass
        # 1200 requests a minute within seconds and would measure 429 answers instead.
        API_THROTTLE_USER="",
    )
    return env


def setup_django(url: str) -> None:
    os.environ.update(server_env(url))
    import django

    django.setup()


LONG_ANSWER = """Answer {j} to question {i}. The short version: use the standard library first, and measure before you optimise.

Here is why. A plausible response from a chat model is often a few paragraphs long, with **bold** words, `inline code`
and a list of steps:

1. Read the input once and keep what you have seen in a set ({i} items here).
2. Build the output in a single pass, so the cost stays linear.
3. Return a new list rather than changing the argument in place.

```python
def unique_in_order(values):
    seen = set()
    out = []
    for value in values:  # answer {j}, question {i}
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out
```

Some words of a plausible response follow, to reach a realistic length. """ + "More explanation of the trade-offs, with an example. " * 18


def bench_text(i: int, j: int, long: bool) -> str:
    """A response: two sentences, or (long) about 250 words of Markdown with a list and a code block."""
    if long:
        return LONG_ANSWER.format(i=i, j=j)
    return f"Answer {j} to question {i}. " + "Some words of a plausible response. " * (3 + j)


def seed(*, tasks: int, k: int, overlap: int, annotators: int, long: bool = False) -> None:
    """COPY prompts, responses, tasks; users, tokens and memberships in bulk. Ids are assigned here."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from annotation.models import Membership, Project, Role

    Project.objects.filter(slug=SLUG).delete()
    project = Project.objects.create(name=f"Serving bench ({'long' if long else 'short'} responses)", slug=SLUG, responses_per_prompt=k,
                                     overlap=overlap, lease_seconds=900)
    User = get_user_model()
    User.objects.filter(username__startswith="bench-ann-").delete()
    password = make_password("bench-password")  # one hash for all: hashing 200 times is not what is measured
    users = User.objects.bulk_create([User(username=f"bench-ann-{i}", password=password) for i in range(annotators)])
    Token.objects.bulk_create([Token(key=secrets.token_hex(20), user=u) for u in users])
    Membership.objects.bulk_create([Membership(user=u, project=project, role=Role.ANNOTATOR) for u in users])

    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM annotation_prompt")
        p0 = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(max(id), 0) FROM annotation_response")
        r0 = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(max(id), 0) FROM annotation_rankingtask")
        t0 = cursor.fetchone()[0]
    now = "2026-01-01T00:00:00+00:00"
    raw = connection.connection
    with raw.cursor() as cur:
        with cur.copy("COPY annotation_prompt (id, project_id, external_id, messages, metadata, content_hash, created_at) FROM STDIN") as copy:
            for i in range(tasks):
                messages = json.dumps([{"role": "user", "content": f"Question number {i}: explain something in two sentences."}])
                copy.write_row((p0 + i + 1, project.pk, f"q{i}", messages, "{}", f"{project.pk}-{i:064d}"[-64:], now))
        with cur.copy(
            "COPY annotation_response (id, prompt_id, run_id, sample_index, text, text_hash, finish_reason, token_count, model_name, "
            "prompt_truncated, created_at) FROM STDIN"
        ) as copy:
            for i in range(tasks):
                for j in range(k):
                    rid = r0 + i * k + j + 1
                    text = bench_text(i, j, long)
                    copy.write_row((rid, p0 + i + 1, None, j, text, f"{rid:064d}", "stop", 40, "bench-model", False, now))
        with cur.copy(
            "COPY annotation_rankingtask (id, project_id, prompt_id, overlap, is_gold, priority, submitted_count, active_count, "
            "is_complete, excluded, task_type, created_at) FROM STDIN"
        ) as copy:
            for i in range(tasks):
                copy.write_row((t0 + i + 1, project.pk, p0 + i + 1, overlap, False, 0, 0, 0, False, False, "ranking", now))
        with cur.copy("COPY annotation_rankingtask_responses (rankingtask_id, response_id) FROM STDIN") as copy:
            for i in range(tasks):
                for j in range(k):
                    copy.write_row((t0 + i + 1, r0 + i * k + j + 1))
        for table in ("annotation_prompt", "annotation_response", "annotation_rankingtask"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")  # noqa: S608 (constant names)
    raw.commit()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def reset_work(project_id: int) -> None:
    """Forget every assignment and ranking, so each run starts from the same state."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM annotation_ranking WHERE project_id = %s", [project_id])
        cursor.execute("DELETE FROM annotation_assignment WHERE project_id = %s", [project_id])
        cursor.execute(
            "UPDATE annotation_rankingtask SET active_count = 0, submitted_count = 0, is_complete = false "
            "WHERE project_id = %s AND (active_count <> 0 OR submitted_count <> 0 OR is_complete)",
            [project_id],
        )
    connection.close()
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE annotation_rankingtask")
        conn.execute("VACUUM ANALYZE annotation_assignment")
        conn.execute("VACUUM ANALYZE annotation_ranking")


def invariants(project_id: int, accepted: list[int], min_ranking_id: int, annotator_id: int | None = None) -> dict:
    from django.db import connection

    q = {
        "tasks_above_overlap": "SELECT count(*) FROM annotation_rankingtask WHERE project_id = %(p)s AND NOT is_gold AND active_count > overlap",
        "counters_off": """
            SELECT count(*) FROM annotation_rankingtask t LEFT JOIN (
                SELECT task_id, count(*) FILTER (WHERE status IN ('leased', 'submitted')) AS live,
                       count(*) FILTER (WHERE status = 'submitted') AS sub
                FROM annotation_assignment WHERE project_id = %(p)s GROUP BY task_id) a ON a.task_id = t.id
            LEFT JOIN (SELECT task_id, count(*) AS n FROM annotation_ranking WHERE project_id = %(p)s GROUP BY task_id) r ON r.task_id = t.id
            WHERE t.project_id = %(p)s AND (t.active_count <> coalesce(a.live, 0) OR t.submitted_count <> coalesce(a.sub, 0)
                  OR t.submitted_count <> coalesce(r.n, 0) OR t.is_complete <> (t.submitted_count >= t.overlap))""",
        "annotator_twice_on_a_task": """SELECT count(*) FROM (SELECT 1 FROM annotation_assignment WHERE project_id = %(p)s
                GROUP BY task_id, annotator_id HAVING count(*) > 1) d""",
        "two_rankings_of_a_task_by_one_annotator": """SELECT count(*) FROM (SELECT 1 FROM annotation_ranking WHERE project_id = %(p)s
                GROUP BY task_id, annotator_id HAVING count(*) > 1) d""",
    }
    out = {}
    with connection.cursor() as cursor:
        for name, sql in q.items():
            cursor.execute(sql, {"p": project_id})
            out[name] = cursor.fetchone()[0]
        extra = " AND annotator_id = %(a)s" if annotator_id else ""
        cursor.execute(f"SELECT id FROM annotation_ranking WHERE project_id = %(p)s AND id >= %(m)s{extra}",  # noqa: S608
                       {"p": project_id, "m": min_ranking_id, "a": annotator_id})
        stored = {row[0] for row in cursor.fetchall()}
    out["accepted_not_stored"] = len(set(accepted) - stored)
    out["stored_not_accepted"] = len(stored - set(accepted))
    out["accepted_answered_twice"] = len(accepted) - len(set(accepted))
    out["ok"] = all(v == 0 for v in out.values())
    return out


def next_ranking_id() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) + 1 FROM annotation_ranking")
        return cursor.fetchone()[0]


def complete_tasks(project_id: int) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM annotation_rankingtask WHERE project_id = %s AND is_complete", [project_id])
        return cursor.fetchone()[0]


def explain_claim(project_id: int, annotator_id: int) -> str:
    from django.db import connection, transaction

    from annotation.sql.assignment import claim_sql

    sql = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + claim_sql(True)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, {"project": project_id, "gold": False, "annotator": annotator_id})
            plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)  # only the plan is wanted, not the claim
    return plan


# ------------------------------------------------------------------------------------ server


def start_gunicorn(url: str, port: int, workers: int, threads: int, worker_class: str, variant: str = "") -> subprocess.Popen:
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    command = [gunicorn, "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers), "-k", worker_class, "--threads", str(threads),
               "--keep-alive", "30", "--backlog", "2048", "--log-level", "warning"]
    proc = subprocess.Popen(command, cwd=ROOT, env=server_env(url, variant), start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                time.sleep(1.0)  # let every worker finish importing
                return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit("gunicorn exited at start")
            time.sleep(0.3)
    proc.kill()
    sys.exit("gunicorn did not start")


def stop_gunicorn(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def cpu_snapshot(server_pid: int) -> dict[str, dict[int, float]]:
    """CPU seconds so far of the gunicorn processes and of this database's PostgreSQL backends."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        backends = [row[0] for row in cursor.fetchall()]
    connection.close()
    return {
        "app": {pid: _cpu_seconds(pid) for pid in [server_pid, *_children(server_pid)]},
        "db": {pid: _cpu_seconds(pid) for pid in backends},
    }


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    return {kind: sum(v - before[kind].get(pid, 0.0) for pid, v in after[kind].items()) for kind in after}


# ------------------------------------------------------------------------------------ client


class Conn:
    """One keep-alive HTTP/1.1 connection: a browser tab or a script, minimal so the client costs little CPU."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
        for attempt in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            payload = json.dumps(body).encode() if body is not None else b""
            lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Token {self.token}", "Accept: application/json",
                     f"Content-Length: {len(payload)}"]
            if body is not None:
                lines.append("Content-Type: application/json")
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            try:
                self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.writer = None
                if attempt:
                    raise
                continue
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split()[1])
            hdrs = {}
            for line in header_lines:
                if ":" in line:
                    key, value = line.split(":", 1)
                    hdrs[key.strip().lower()] = value.strip()
            data = await self.reader.readexactly(int(hdrs.get("content-length", "0")))
            if hdrs.get("connection", "").lower() == "close":
                self.writer.close()
                self.writer = None
            return status, hdrs, data
        raise RuntimeError("unreachable")


class Stats:
    def __init__(self) -> None:
        self.next_ms: list[float] = []
        self.submit_ms: list[float] = []
        self.accepted: list[int] = []
        self.codes: dict[str, int] = {}
        self.no_task = 0
        self.requests = 0  # all of them, warm-up included (for CPU per request)

    def code(self, what: str, status: int) -> None:
        key = f"{what} {status}"
        self.codes[key] = self.codes.get(key, 0) + 1


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def annotator_loop(conn: Conn, project_id: int, stats: Stats, *, until: float, measure_from: float, pause: tuple[float, float] | None,
                         key_prefix: str, one_trip: bool = False) -> None:
    if one_trip:
        await one_trip_loop(conn, project_id, stats, until=until, measure_from=measure_from, pause=pause, key_prefix=key_prefix)
        return
    rng = random.Random()
    while time.monotonic() < until:
        if pause:
            await asyncio.sleep(rng.uniform(*pause))
        t0 = time.monotonic()
        stats.requests += 2
        status, hdrs, data = await conn.request("GET", f"/api/v1/projects/{project_id}/next-task")
        t1 = time.monotonic()
        if t0 >= measure_from:
            stats.next_ms.append((t1 - t0) * 1000)
        stats.code("next-task", status)
        if status == 204:
            stats.no_task += 1
            await asyncio.sleep(0.2)
            continue
        if status != 200:
            await asyncio.sleep(0.2)
            continue
        task = json.loads(data)
        ids = [r["id"] for r in task["responses"]]
        rng.shuffle(ids)
        if pause:
            await asyncio.sleep(rng.uniform(*pause))
        body = {"ranking": [[i] for i in ids], "duration_seconds": 2.0}
        t2 = time.monotonic()
        status, hdrs, data = await conn.request("POST", f"/api/v1/assignments/{task['id']}/submit", body,
                                                {"Idempotency-Key": f"{key_prefix}-{uuid.uuid4().hex}"})
        t3 = time.monotonic()
        if t2 >= measure_from:
            stats.submit_ms.append((t3 - t2) * 1000)
        stats.code("submit", status)
        if status == 201:
            stats.accepted.append(json.loads(data)["ranking_id"])


async def one_trip_loop(conn: Conn, project_id: int, stats: Stats, *, until: float, measure_from: float,
                        pause: tuple[float, float] | None, key_prefix: str) -> None:
    """One request per ranking: submit?next=true answers the next assignment; next-task only to start
    and after a 409 (a parallel tab submitted the shared lease first) or an empty answer."""
    rng = random.Random()
    task = None
    while time.monotonic() < until:
        if task is None:
            t0 = time.monotonic()
            stats.requests += 1
            status, hdrs, data = await conn.request("GET", f"/api/v1/projects/{project_id}/next-task")
            if t0 >= measure_from:
                stats.next_ms.append((time.monotonic() - t0) * 1000)
            stats.code("next-task", status)
            if status != 200:
                stats.no_task += status == 204
                await asyncio.sleep(0.2)
                continue
            task = json.loads(data)
        ids = [r["id"] for r in task["responses"]]
        rng.shuffle(ids)
        if pause:
            await asyncio.sleep(rng.uniform(*pause))
        body = {"ranking": [[i] for i in ids], "duration_seconds": 2.0}
        t2 = time.monotonic()
        stats.requests += 1
        status, hdrs, data = await conn.request("POST", f"/api/v1/assignments/{task['id']}/submit?next=true", body,
                                                {"Idempotency-Key": f"{key_prefix}-{uuid.uuid4().hex}"})
        if t2 >= measure_from:
            stats.submit_ms.append((time.monotonic() - t2) * 1000)
        stats.code("submit?next", status)
        task = None
        if status == 201:
            answer = json.loads(data)
            stats.accepted.append(answer["ranking_id"])
            task = answer["next"]


async def run_scenario(*, port: int, project_id: int, tokens: list[str], duration: float, warmup: float, pause: tuple[float, float] | None,
                       ramp: float = 0.0, one_trip: bool = False) -> tuple[Stats, float]:
    stats = Stats()
    start = time.monotonic()
    measure_from = start + warmup
    until = measure_from + duration

    async def one(i: int, token: str) -> None:
        if ramp:
            await asyncio.sleep(ramp * i / max(1, len(tokens)))
        await annotator_loop(Conn(port, token), project_id, stats, until=until, measure_from=measure_from, pause=pause, key_prefix=f"a{i}",
                             one_trip=one_trip)

    await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
    return stats, time.monotonic() - measure_from


async def warm_up(port: int, token: str, workers: int, threads: int) -> float:
    """First requests import the URLconf and every view module in each worker: not what is measured."""
    conns = [Conn(port, token) for _ in range(workers * threads * 2)]
    t0 = time.monotonic()
    for _ in range(3):
        await asyncio.gather(*(c.request("GET", "/api/v1/projects/") for c in conns))
    return time.monotonic() - t0


def report(name: str, stats: Stats, seconds: float, extra: str = "") -> dict:
    submitted = len([1 for _ in stats.submit_ms])
    figures = {
        "rankings_per_s": round(len(stats.accepted) / seconds, 1),
        "scenario": name,
        "seconds": round(seconds, 1),
        "requests_per_s": round((len(stats.next_ms) + len(stats.submit_ms)) / seconds, 1),
        "submissions_per_s": round(submitted / seconds, 1),
        "next_task_ms": {p: round(pct(stats.next_ms, p), 1) for p in (50, 95, 99)},
        "submit_ms": {p: round(pct(stats.submit_ms, p), 1) for p in (50, 95, 99)},
        "codes": stats.codes,
    }
    print(f"\n== {name}: {figures['requests_per_s']} req/s measured over {figures['seconds']} s; {figures['submissions_per_s']} submissions/s, "
          f"{figures['rankings_per_s']} rankings stored/s {extra}")
    print(f"   next-task p50/p95/p99 = {figures['next_task_ms'][50]} / {figures['next_task_ms'][95]} / {figures['next_task_ms'][99]} ms"
          f"   (mean {statistics.fmean(stats.next_ms) if stats.next_ms else float('nan'):.1f})")
    print(f"   submit    p50/p95/p99 = {figures['submit_ms'][50]} / {figures['submit_ms'][95]} / {figures['submit_ms'][99]} ms")
    print(f"   responses: {stats.codes}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=3, help="responses per task")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--saturation-annotators", type=int, default=50)
    parser.add_argument("--realistic-annotators", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--scenarios", default="saturation,saturation-next,realistic,tabs,tabs-next",
                        help="comma-separated; the -next ones rank with submit?next=true (one request per ranking)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class: gthread (keep-alive) or sync")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--long-responses", action="store_true",
                        help="about 250 words of Markdown per response (a list, a code block), rendered by the server")
    args = parser.parse_args()

    ensure_database(args.database_url)
    setup_django(args.database_url)
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from annotation.models import Project, RankingTask
    from annotation.services.prerender import prerender_fill

    call_command("migrate", verbosity=0)
    annotators = max(args.saturation_annotators, args.realistic_annotators) + 1
    project = Project.objects.filter(slug=SLUG).first()
    if (args.reseed or project is None or RankingTask.objects.filter(project=project).count() != args.tasks
            or project.overlap != args.overlap or project.responses_per_prompt != args.k
            or project.name != f"Serving bench ({'long' if args.long_responses else 'short'} responses)"
            or Token.objects.filter(user__username__startswith="bench-ann-").count() < annotators):
        t0 = time.monotonic()
        print(f"seeding {args.tasks} tasks (K={args.k}, overlap {args.overlap}, {annotators} annotators) ...", flush=True)
        seed(tasks=args.tasks, k=args.k, overlap=args.overlap, annotators=annotators, long=args.long_responses)
        print(f"seeded in {time.monotonic() - t0:.1f} s", flush=True)
        project = Project.objects.get(slug=SLUG)
    t0 = time.monotonic()
    rendered = prerender_fill(project_id=project.pk)
    print(f"rendered ahead of time: {rendered} texts in {time.monotonic() - t0:.1f} s (a worker's job after an import)", flush=True)
    reset_work(project.pk)
    tokens = list(Token.objects.filter(user__username__startswith="bench-ann-").order_by("user_id").values_list("key", "user_id"))
    connection.close()

    def start(variant: str) -> subprocess.Popen:
        proc = start_gunicorn(args.database_url, args.port, args.workers, args.threads, args.worker_class, variant)
        warm = asyncio.run(warm_up(args.port, tokens[-1][0], args.workers, args.threads))
        settings = ", ".join(f"{k}={v}" for k, v in VARIANTS[variant].items())
        print(f"server warm-up ({settings}): {warm:.1f} s", flush=True)
        return proc

    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for named in scenarios:
        if named.partition("@")[2] not in VARIANTS:
            sys.exit(f"unknown variant in {named}: one of " + ", ".join("@" + v for v in VARIANTS if v))
    variant = scenarios[0].partition("@")[2] if scenarios else ""
    server = start(variant)
    results = []
    ok = True
    try:
        for named in scenarios:
            scenario = named.partition("@")[0]
            if named.partition("@")[2] != variant:
                stop_gunicorn(server)
                variant = named.partition("@")[2]
                server = start(variant)
            before_id = next_ranking_id()
            complete_before = complete_tasks(project.pk)
            connection.close()
            load_before = os.getloadavg()[0]
            cpu_before = cpu_snapshot(server.pid)
            client_cpu = time.process_time()
            if scenario in ("saturation", "saturation-next"):
                one_trip = scenario == "saturation-next"
                chosen = [t for t, _ in tokens[1 : 1 + args.saturation_annotators]]
                stats, seconds = asyncio.run(run_scenario(port=args.port, project_id=project.pk, tokens=chosen, duration=args.duration,
                                                          warmup=args.warmup, pause=None, one_trip=one_trip))
                completed = complete_tasks(project.pk) - complete_before
                how = "submit?next=true, one request per ranking" if one_trip else "next-task + submit"
                figures = report(f"{named}, {len(chosen)} annotators, no pause, {how}", stats, seconds + args.warmup,
                                 f"(over warm-up + measure); tasks brought to full overlap: {completed / (seconds + args.warmup):.1f}/s")
                figures["full_tasks_per_s"] = round(completed / (seconds + args.warmup), 1)
                annotator = None
            elif scenario == "realistic":
                chosen = [t for t, _ in tokens[1 : 1 + args.realistic_annotators]]
                stats, seconds = asyncio.run(run_scenario(port=args.port, project_id=project.pk, tokens=chosen, duration=args.duration,
                                                          warmup=max(args.warmup, 3.0), pause=(1.0, 3.0), ramp=3.0))
                figures = report(f"{named}, {len(chosen)} annotators pausing 1-3 s before each request", stats, seconds)
                annotator = None
            elif scenario in ("tabs", "tabs-next"):
                token, annotator = tokens[0]
                stats, seconds = asyncio.run(run_scenario(port=args.port, project_id=project.pk, tokens=[token] * 10,
                                                          duration=min(args.duration, 15.0), warmup=0.0, pause=None,
                                                          one_trip=scenario == "tabs-next"))
                figures = report(f"{named}: one annotator in ten parallel sessions", stats, seconds)
            else:
                sys.exit(f"unknown scenario {named}")
            used = cpu_used(cpu_before, cpu_snapshot(server.pid))
            used["client"] = time.process_time() - client_cpu
            per_request = {k: round(1000 * v / max(1, stats.requests), 2) for k, v in used.items()}
            figures["cpu_ms_per_request"] = per_request
            capacity = 1000 * (os.cpu_count() or 1) / max(0.01, per_request["app"] + per_request["db"])
            print(f"   CPU per request: app {per_request['app']} ms, PostgreSQL {per_request['db']} ms, load generator "
                  f"{per_request['client']} ms -> an idle {os.cpu_count()}-CPU machine serves ~{capacity:.0f} req/s of this mix")
            check = invariants(project.pk, stats.accepted, before_id, annotator)
            figures["invariants"] = check
            figures["load_average_before"] = round(load_before, 2)
            ok = ok and check["ok"]
            print(f"   invariants: {'OK' if check['ok'] else 'VIOLATED'} {check}")
            results.append(figures)
            connection.close()
    finally:
        stop_gunicorn(server)

    by_name: dict[str, list[float]] = {}
    for r in results:  # a scenario named twice (interleaved, to even out drift) is summarised by its median
        by_name.setdefault(r["scenario"].split(",")[0].split(":")[0], []).append(r["rankings_per_s"])
    pairs = [(two, one, "same run, same server") for two, one in (("saturation", "saturation-next"), ("tabs", "tabs-next"))]
    pairs += [(f"{name}@{variant}", name, "same run, the server restarted between the two")
              for variant in VARIANTS if variant for name in ("saturation", "saturation-next", "realistic", "tabs", "tabs-next")]
    pairs += [(f"saturation@{variant}", "saturation-next", "same run, the server restarted between the two")
              for variant in VARIANTS if variant]
    for two, one, how in pairs:
        if two in by_name and one in by_name and statistics.median(by_name[two]):
            a, b = round(statistics.median(by_name[one]), 1), round(statistics.median(by_name[two]), 1)
            print(f"\n{one} / {two}: {a} / {b} rankings stored/s (median of {by_name[one]} / {by_name[two]}) = {a / b:.2f}x "
                  f"({how})")
    print("\nclaim query plan (EXPLAIN ANALYZE, a mid-run state):")
    print(explain_claim(project.pk, tokens[1][1]))
    print(f"\nmachine: {os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.1f}; gunicorn {args.workers}x{args.threads} {args.worker_class}; "
          f"server, PostgreSQL and load generator on the same machine")
    print("reproduce: .venv/bin/python bench/serving.py " + " ".join(sys.argv[1:]))
    Path("/tmp/bench-serving.json").write_text(json.dumps(results, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
