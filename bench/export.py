"""Benchmark an export: 1M rankings (K=4, overlap 3 -> ~333k tasks) seeded into PostgreSQL by COPY.

The data goes straight into its own database (default annot_bench_export; created and migrated
if missing, re-seeded when the size asked for differs). The export then runs in a fresh child
process, exactly as `export_preferences` runs it (annotation.services.export.export_write), and
its wall time, CPU time and peak resident memory (VmHWM of that process) are printed with
the load average of the machine (1-minute, read when the run ends).
Targets at 1M rankings: under 60 s and under 300 MB, for pairs (issue 6) and rankings (issue 16).

With --baseline DIR the same export also runs from another checkout of the project (for example
the code before a change), in the same session and on the same data, alternating with this
checkout's for --rounds rounds, and both sets of figures are printed side by side.

    .venv/bin/python bench/export.py                          # 1M rankings, pairs, JSONL
    .venv/bin/python bench/export.py --format rankings --baseline ../orig   # before/after
    .venv/bin/python bench/export.py --rankings 30000         # scaled down
    .venv/bin/python bench/export.py --file-format parquet --format unpaired
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/annot_bench_export"
SLUG = "bench-export"
WORDS = ["the", "model", "answer", "is", "clear", "short", "long", "because", "which", "however", "perhaps", "water", "river", "number", "seven", "light", "question", "reason", "simple", "careful", "example", "first", "second", "result", "value", "small", "large"]


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def ensure_database(database_url: str) -> None:
    import psycopg

    base, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(WORDS, k=n)).capitalize() + "."


def seed(*, rankings: int, k: int, overlap: int, annotators: int) -> dict:
    """COPY the rows in, with ids assigned here; sequences are moved past them at the end."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotation.models import GenerationRun, Project

    User = get_user_model()
    Project.objects.filter(slug=SLUG).delete()
    project = Project.objects.create(name=SLUG, slug=SLUG, responses_per_prompt=k, overlap=overlap)
    users = []
    for i in range(annotators):
        user, _ = User.objects.get_or_create(username=f"bench-annotator-{i}")
        users.append(user.id)
    run = GenerationRun.objects.create(project=project, model_name="bench-model", status="succeeded", n=k)
    tasks = rankings // overlap
    rng = random.Random(0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM annotation_prompt")
        prompt0 = cursor.fetchone()[0] + 1
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM annotation_response")
        response0 = cursor.fetchone()[0] + 1
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM annotation_rankingtask")
        task0 = cursor.fetchone()[0] + 1
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM annotation_assignment")
        assignment0 = cursor.fetchone()[0] + 1
    raw = connection.connection  # the psycopg connection, for COPY
    now = time.strftime("%Y-%m-%d %H:%M:%S+00")
    started = time.monotonic()
    with raw.cursor() as cur:
        with cur.copy("COPY annotation_prompt (id, project_id, external_id, messages, metadata, content_hash, created_at) FROM STDIN") as copy:
            for t in range(tasks):
                messages = json.dumps([{"role": "user", "content": f"Question {t}: {sentence(rng, 12)}"}])
                copy.write_row((prompt0 + t, project.id, f"q{t}", messages, "{}", f"{t:064x}", now))
        with cur.copy(
            "COPY annotation_response (id, prompt_id, run_id, sample_index, text, text_hash, finish_reason, token_count, "
            "model_name, prompt_truncated, created_at) FROM STDIN"
        ) as copy:
            for t in range(tasks):
                for s in range(k):
                    rid = response0 + t * k + s
                    copy.write_row((rid, prompt0 + t, run.id, s, sentence(rng, 20 + 5 * s), f"{rid:064x}", "stop", 25, "bench-model", False, now))
        with cur.copy(
            "COPY annotation_rankingtask (id, project_id, prompt_id, overlap, is_gold, priority, submitted_count, active_count, "
            "is_complete, excluded, task_type, created_at) FROM STDIN"
        ) as copy:
            for t in range(tasks):
                copy.write_row((task0 + t, project.id, prompt0 + t, overlap, False, 0, overlap, overlap, True, False, "ranking", now))
        with cur.copy("COPY annotation_rankingtask_responses (rankingtask_id, response_id) FROM STDIN") as copy:
            for t in range(tasks):
                for s in range(k):
                    copy.write_row((task0 + t, response0 + t * k + s))
        with cur.copy(
            "COPY annotation_assignment (id, task_id, project_id, annotator_id, status, display_order, opaque_ids, leased_at, "
            "lease_expires_at, finished_at, skip_reason) FROM STDIN"
        ) as copy:
            for t in range(tasks):
                ids = [response0 + t * k + s for s in range(k)]
                for j in range(overlap):
                    order = ids[:]
                    rng.shuffle(order)
                    opaque = json.dumps({f"r{i}": rid for i, rid in enumerate(order)})
                    copy.write_row((assignment0 + t * overlap + j, task0 + t, project.id, users[(t + j) % len(users)], "submitted",
                                    json.dumps(order), opaque, now, now, now, ""))
        with cur.copy(
            "COPY annotation_ranking (assignment_id, project_id, task_id, annotator_id, tiers, flags, rationale, duration_seconds, "
            "idempotency_key, created_at) FROM STDIN"
        ) as copy:
            for t in range(tasks):
                base = [response0 + t * k + s for s in range(k)]  # sample 0 is "best" on average
                for j in range(overlap):
                    order = base[:]
                    for _ in range(2):  # annotator noise: a couple of adjacent swaps
                        i = rng.randrange(k - 1)
                        if rng.random() < 0.5:
                            order[i], order[i + 1] = order[i + 1], order[i]
                    tiers = [[rid] for rid in order]
                    if rng.random() < 0.1:  # some ties
                        tiers = [tiers[0] + tiers[1]] + tiers[2:]
                    copy.write_row((assignment0 + t * overlap + j, project.id, task0 + t, users[(t + j) % len(users)],
                                    json.dumps(tiers), "{}", "", 15.0, "", now))
    raw.commit()
    with connection.cursor() as cursor:
        for table in ("annotation_prompt", "annotation_response", "annotation_rankingtask", "annotation_rankingtask_responses",
                      "annotation_assignment", "annotation_ranking"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")  # noqa: S608
            cursor.execute(f"ANALYZE {table}")
    return {"tasks": tasks, "rankings": tasks * overlap, "responses": tasks * k, "seconds": round(time.monotonic() - started, 1)}


def export_child(args: argparse.Namespace) -> None:
    """Runs in the measured child process: one export, then its figures as one JSON line."""
    setup_django(args.database_url)
    from annotation.models import Project
    from annotation.services.export import export_options_from_input, export_write

    project = Project.objects.get(slug=SLUG)
    options = export_options_from_input({"format": args.format, "file_format": args.file_format, "test_fraction": 0.1, "seed": 0})
    started = time.monotonic()
    manifest = export_write(project=project, options=options, out_dir=args.out, created_by="bench")
    seconds = time.monotonic() - started
    rows = sum(split["rows"] for split in manifest["splits"].values())
    size = sum(split["bytes"] for split in manifest["splits"].values())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    from bench.memory import peak_rss_kb

    peak_mb = peak_rss_kb() / 1024
    print(json.dumps({"seconds": round(seconds, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), "rows": rows, "bytes": size, "peak_rss_mb": round(peak_mb, 1),
                      "tasks": manifest["counts"]["tasks_seen"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rankings", type=int, default=1_000_000, help="rankings to seed (tasks = rankings / overlap)")
    parser.add_argument("--k", type=int, default=4, help="responses per task")
    parser.add_argument("--overlap", type=int, default=3, help="rankings per task")
    parser.add_argument("--annotators", type=int, default=30)
    parser.add_argument("--format", default="pairs")
    parser.add_argument("--file-format", default="jsonl")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--out", default="/tmp/bench-export-out")
    parser.add_argument("--reseed", action="store_true", help="seed again even if the database holds this size")
    parser.add_argument("--baseline", help="another checkout of the project (e.g. before a change) to run the same export from")
    parser.add_argument("--rounds", type=int, default=1, help="with --baseline: alternate the two this many times")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        export_child(args)
        return

    ensure_database(args.database_url)
    setup_django(args.database_url)
    from django.core.management import call_command

    from annotation.models import Project, Ranking

    call_command("migrate", verbosity=0)
    project = Project.objects.filter(slug=SLUG).first()
    want = (args.rankings // args.overlap) * args.overlap
    if args.reseed or project is None or Ranking.objects.filter(project=project).count() != want or project.responses_per_prompt != args.k:
        print(f"seeding {want} rankings (K={args.k}, overlap {args.overlap}) into {args.database_url} ...", flush=True)
        print("seeded:", seed(rankings=args.rankings, k=args.k, overlap=args.overlap, annotators=args.annotators), flush=True)
    else:
        print(f"reusing {want} seeded rankings in {args.database_url}", flush=True)

    checkouts = [("this checkout", ROOT)]
    if args.baseline:
        checkouts.insert(0, ("baseline " + str(args.baseline), Path(args.baseline).resolve()))
    results: dict[str, list[dict]] = {label: [] for label, _ in checkouts}
    for round_index in range(args.rounds):
        for label, root in checkouts:
            figures = run_child(args, root)
            figures["load"] = round(os.getloadavg()[0], 1)
            results[label].append(figures)
            print(f"round {round_index + 1}, {label}: {describe(args, want, figures)}", flush=True)
    if args.baseline:
        print(f"side by side ({args.format}/{args.file_format}, {want} rankings; targets at 1M: < 60 s, < 300 MB; "
              f"{os.cpu_count()} CPUs):")
        for label, runs in results.items():
            cells = ", ".join(f"{r['seconds']:.1f} s / {r['peak_rss_mb']:.0f} MB at load {r['load']:.1f}" for r in runs)
            print(f"  {label}: {cells}")
    print("reproduce:", " ".join(["python", "bench/export.py", *sys.argv[1:]]))


def run_child(args: argparse.Namespace, root: Path) -> dict:
    """One export in a fresh process, with the code of the checkout at `root`."""
    import shutil

    shutil.rmtree(args.out, ignore_errors=True)
    command = [sys.executable, str(root / "bench" / "export.py"), "--child", "--database-url", args.database_url,
               "--format", args.format, "--file-format", args.file_format, "--out", args.out]
    result = subprocess.run(command, capture_output=True, text=True, cwd=root, check=False)
    if result.returncode != 0:
        sys.exit(f"export failed ({root}):\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def describe(args: argparse.Namespace, want: int, figures: dict) -> str:
    return (
        f"export {args.format}/{args.file_format}: {figures['tasks']} tasks, {want} rankings -> {figures['rows']} rows "
        f"({figures['bytes'] / 1e6:.0f} MB) in {figures['seconds']:.1f} s = {figures['rows'] / figures['seconds']:,.0f} rows/s, "
        f"{want / figures['seconds']:,.0f} rankings/s (CPU time of the export process {figures['cpu_seconds']:.1f} s, "
        f"including Django start-up); peak RSS {figures['peak_rss_mb']:.0f} MB; load average {figures['load']:.1f}"
    )


if __name__ == "__main__":
    main()
