"""Benchmark the agreement statistics: N tasks x K responses x M annotators per task.

Synthetic rankings (Thurstone noise around hidden scores, a crowd of annotators with one spammer,
random display orders) go through the same vectorised core the service uses
(annotation.services.agreement.agreement_compute). Prints seconds and peak memory.

    .venv/bin/python bench/agreement.py                      # 100k tasks x K=4 x 3 annotators
    .venv/bin/python bench/agreement.py --tasks 10000 --bootstrap 200
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=4, help="responses per task")
    parser.add_argument("--annotators-per-task", type=int, default=3)
    parser.add_argument("--crowd", type=int, default=20, help="distinct annotators (the last one is a spammer)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import django

    django.setup()
    from annotation.services.agreement import agreement_compute

    data = synthetic(args.tasks, args.k, args.annotators_per_task, args.crowd, args.seed)
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


if __name__ == "__main__":
    main()
