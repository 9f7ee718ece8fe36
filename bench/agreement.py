"""Benchmark the agreement statistics: N tasks x K responses x M annotators per task.

Synthetic rankings (Thurstone noise around hidden scores, a crowd of annotators with one spammer,
random display orders) go through the same vectorised core the service uses
(annotation.services.agreement.agreement_compute). Prints seconds and peak memory.

    .venv/bin/python bench/agreement.py                      # 100k tasks x K=4 x 3 annotators
    .venv/bin/python bench/agreement.py --tasks 10000 --bootstrap 200
    DATABASE_URL=postgresql://... .venv/bin/python bench/agreement.py --db-tasks 20000
        # also the database path: writes a throwaway project of that many tasks (deleted afterwards),
        # then times loading its rankings and the whole project_agreement_compute, old (decoding the
        # tiers JSON) and new (the rank vectors written at submit time), and the end-to-end refresh
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def synthetic(tasks: int, k: int, per_task: int, crowd: int, seed: int):
    from annotation.services.agreement import RankData

    rng = np.random.default_rng(seed)
    noise = np.linspace(0.3, 1.2, crowd)
    noise[-1] = 1e6  # the spammer: ranks at random
    truth = rng.normal(size=(tasks, k))
    # Each task gets `per_task` distinct annotators out of the crowd.
    annotators = np.argsort(rng.random((tasks, crowd)), axis=1)[:, :per_task]
    scores = truth[:, None, :] + rng.normal(size=(tasks, per_task, k)) * noise[annotators][:, :, None]
    ranks = (np.argsort(np.argsort(-scores, axis=2), axis=2) + 1).astype(float).reshape(-1, k)
    display = np.argsort(rng.random((tasks * per_task, k)), axis=1)
    return RankData(
        ranks=ranks,
        task=np.repeat(np.arange(tasks), per_task),
        annotator=annotators.reshape(-1),
        n_tasks=tasks,
        n_annotators=crowd,
        display=display,
        seconds=rng.gamma(4.0, 5.0, size=tasks * per_task),
    )


def db_bench(tasks: int, k: int, per_task: int, crowd: int, bootstrap: int, seed: int) -> None:
    import datetime as dt

    from django.db import transaction
    from django.utils import timezone

    from annotation.models import Assignment, AssignmentStatus, Project, Prompt, Ranking, RankingTask, Response
    from annotation.services.agreement import project_agreement_compute, rank_data_load
    from annotation.services.agreement_cache import agreement_report_refresh
    from annotation.services.projects import membership_add, project_create, user_create
    from annotation.services.ranking_stats import ranking_vectors

    data = synthetic(tasks, k, per_task, crowd, seed)
    tag = f"bench-agreement-{os.getpid()}"
    start = time.perf_counter()
    with transaction.atomic():
        project = project_create(name=tag, responses_per_prompt=k, overlap=per_task)
        users = [user_create(username=f"{tag}-{i}").user for i in range(crowd)]
        for user in users:
            membership_add(project=project, user=user, role="annotator")
        prompts = Prompt.objects.bulk_create(
            [Prompt(project=project, messages=[{"role": "user", "content": f"q{i}"}], content_hash=f"{i}") for i in range(tasks)],
            batch_size=5000,
        )
        responses = Response.objects.bulk_create(
            [Response(prompt=p, sample_index=j, text=f"a{j}") for p in prompts for j in range(k)], batch_size=5000
        )
        task_rows = RankingTask.objects.bulk_create([RankingTask(project=project, prompt=p) for p in prompts], batch_size=5000)
        now = timezone.now()
        ids = np.array([r.pk for r in responses]).reshape(tasks, k)
        assignments = Assignment.objects.bulk_create(
            [
                Assignment(
                    task=task_rows[t], project=project, annotator=users[a], status=AssignmentStatus.SUBMITTED,
                    display_order=ids[t][data.display[row].argsort()].tolist(), lease_expires_at=now + dt.timedelta(hours=1),
                )
                for row, (t, a) in enumerate(zip(data.task, data.annotator, strict=True))
            ],
            batch_size=5000,
        )
        Ranking.objects.bulk_create(
            [
                Ranking(
                    assignment=assignment, project=project, task_id=assignment.task_id, annotator_id=assignment.annotator_id,
                    tiers=tiers, duration_seconds=float(data.seconds[row]),
                    # what the ranking service writes at submit time (annotation.services.ranking_stats)
                    **dict(zip(("rank_vector", "display_vector"),
                               ranking_vectors(tiers=tiers, display_order=assignment.display_order), strict=True)),
                )
                for row, (assignment, t) in enumerate(zip(assignments, data.task, strict=True))
                for tiers in [[[int(i)] for i in ids[t][np.argsort(data.ranks[row])]]]
            ],
            batch_size=5000,
        )
    print(f"database path: wrote {tasks} tasks / {len(assignments)} rankings in {time.perf_counter() - start:.1f} s")
    try:
        timings = {}
        for name, packed in (("old (decode tiers JSON)", False), ("new (rank vectors)", True)):
            start = time.perf_counter()
            rank_data_load(project=project, packed=packed)
            load = time.perf_counter() - start
            start = time.perf_counter()
            report = project_agreement_compute(project=project, bootstrap=bootstrap, seed=seed, packed=packed)
            timings[name] = (load, time.perf_counter() - start, report["alpha"])
        for name, (load, total, alpha) in timings.items():
            print(f"  {name}: load rankings into arrays {load:.2f} s; whole project_agreement_compute {total:.2f} s (alpha {alpha})")
        start = time.perf_counter()
        agreement_report_refresh(project_id=project.pk)  # what the Celery refresh runs: load, compute, store
        refresh = time.perf_counter() - start
        old, new = timings["old (decode tiers JSON)"], timings["new (rank vectors)"]
        print(f"  load: old / new = {old[0] / new[0]:.1f}x; end-to-end refresh (agreement_report_refresh, new path): "
              f"{refresh:.2f} s (target < 5); load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        Project.objects.filter(pk=project.pk).delete()
        get_user_model_delete(tag)


def get_user_model_delete(tag: str) -> None:
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username__startswith=f"{tag}-").delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=4, help="responses per task")
    parser.add_argument("--annotators-per-task", type=int, default=3)
    parser.add_argument("--crowd", type=int, default=20, help="distinct annotators (the last one is a spammer)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db-tasks", type=int, default=0, help="also time the database path on this many tasks")
    args = parser.parse_args()

    import django

    django.setup()
    from annotation.services.agreement import agreement_compute

    data = synthetic(args.tasks, args.k, args.annotators_per_task, args.crowd, args.seed)
    # Warm-up on a small crowd: scipy loads inside agreement (only where it is needed), once per process;
    # timed cold under tracemalloc, that import was most of the figure (5.3 s against 1.4 s computing).
    start = time.perf_counter()
    agreement_compute(synthetic(200, args.k, args.annotators_per_task, args.crowd, args.seed), bootstrap=10, seed=args.seed)
    print(f"warm-up (first call in the process, imports included): {time.perf_counter() - start:.2f} s")
    tracemalloc.start()
    start = time.perf_counter()
    report = agreement_compute(data, bootstrap=args.bootstrap, seed=args.seed)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    spammer = report["annotators"][-1]
    print(
        f"agreement core: {args.tasks} tasks x K={args.k} x {args.annotators_per_task} annotators "
        f"({report['rankings']} rankings, {args.bootstrap} bootstrap samples)"
    )
    print(f"  seconds: {seconds:.2f}  (target < 5)")
    print(f"  peak memory (numpy/python allocations, tracemalloc): {peak / 2**20:.0f} MiB")
    print(
        f"  alpha {report['alpha']} CI {report['alpha_ci']}  W mean {report['kendall_w_mean']}  "
        f"tau-b {report['tau_b_mean']}  pairwise {report['pairwise_agreement']}  "
        f"position-bias p {report['position_bias']['p_value']}"
    )
    print(f"  spammer agreement {spammer['agreement']} flagged={spammer['flagged']}; "
          f"flagged: {[a['username'] for a in report['annotators'] if a['flagged']]}")
    print("  reproduce: .venv/bin/python bench/agreement.py " + " ".join(sys.argv[1:]))
    if args.db_tasks:
        db_bench(args.db_tasks, args.k, args.annotators_per_task, args.crowd, args.bootstrap, args.seed)


if __name__ == "__main__":
    main()
