"""How much any adaptive-overlap rule could save at the accuracy of fixed overlap 3, with bench/adaptive.py's crowd.

Pure Python, no database: the same hidden truths (seeded as in bench/adaptive.py), the same crowd
(Plackett-Luce annotators and one spammer), the platform's consensus (consensus.task_consensus,
Borda tiers, a tie counts as wrong). Each task draws up to --most rankings from distinct annotators
in a random order; any stopping rule with min overlap M then takes some n in M..most of them.

The bound: a clairvoyant rule, which knows the hidden truth and so the accuracy each n would give,
choosing n per task to get the most correct pairs with at most B rankings in all. Its best is at most
min over lambda >= 0 of lambda * B + sum over tasks of max_n (correct(n) - lambda * n) (Lagrangian
duality), which is what is printed. No real rule can do better than a clairvoyant one, so where the
bound at B = 70% of fixed 3's rankings is below fixed 3's accuracy, "30% fewer rankings for the
same accuracy" is out of reach for every rule of this form on this crowd.

    .venv/bin/python bench/adaptive_bound.py --seeds 1,2,3,4,5
"""
from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotation.services.consensus import task_consensus  # noqa: E402  (pure functions, no Django)
from bench.adaptive import CROWD_BETAS, plackett_luce  # noqa: E402


def correct_pairs(rankings: list, quality: dict[int, float]) -> int:
    """Pairs the platform's consensus orders as the hidden truth does (a consensus tie is wrong)."""
    place = {rid: i for i, tier in enumerate(task_consensus(rankings).tiers) for rid in tier}
    ids = sorted(quality)
    return sum(1 for i, a in enumerate(ids) for b in ids[i + 1:]
               if place[a if quality[a] > quality[b] else b] < place[b if quality[a] > quality[b] else a])


def crowd_tasks(*, seed: int, tasks: int, k: int, most: int, betas: tuple[float, ...],
                scale: tuple[float, float]) -> list[list[int]]:
    """Per task, the correct pairs of the consensus of its first n rankings, n = 1..most."""
    rng, truth_rng = random.Random(seed), random.Random(seed * 7919 + 1)
    crowd = (*betas, 0.0)
    out = []
    for _ in range(tasks):
        spread = math.exp(truth_rng.gauss(*scale))
        quality = {j: spread * truth_rng.gauss(0.0, 1.0) for j in range(k)}
        people = rng.sample(crowd, most)
        rankings = [plackett_luce(rng, quality, beta) for beta in people]
        out.append([correct_pairs(rankings[:n], quality) for n in range(1, most + 1)])
    return out


def clairvoyant_bound(correct: list[list[int]], *, budget: float, least: int) -> float:
    """Upper bound on the correct pairs of any rule taking least..most rankings per task, budget in all."""
    best = math.inf
    for step in range(0, 601):
        lam = step * 0.01
        best = min(best, lam * budget + sum(max(c[n - 1] - lam * n for n in range(least, len(c) + 1)) for c in correct))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--most", type=int, default=7, help="the largest overlap a rule may use")
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--betas", default=",".join(str(b) for b in CROWD_BETAS))
    parser.add_argument("--scale", default="0.7,0.6")
    args = parser.parse_args()
    betas = tuple(float(b) for b in args.betas.split(","))
    mu, sigma = (float(x) for x in args.scale.split(","))
    pairs = args.tasks * args.k * (args.k - 1) // 2
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"crowd: betas {', '.join(str(b) for b in betas)} and one spammer; {args.tasks} tasks x K={args.k}; "
          f"up to {args.most} rankings per task")
    print(f"{'seed':>5}{'fixed 3':>10}{'fixed 2':>10}" + "".join(f"{f'bound M=2 at {s:.0%}':>20}" for s in (0.70, 0.80, 0.90)))
    for seed in (int(s) for s in args.seeds.split(",")):
        correct = crowd_tasks(seed=seed, tasks=args.tasks, k=args.k, most=args.most, betas=betas, scale=(mu, sigma))
        fixed3, fixed2 = (sum(c[n - 1] for c in correct) / pairs for n in (3, 2))
        bounds = [clairvoyant_bound(correct, budget=share * 3 * args.tasks, least=2) / pairs for share in (0.70, 0.80, 0.90)]
        print(f"{seed:>5}{fixed3:>10.3f}{fixed2:>10.3f}" + "".join(f"{b:>20.3f}" for b in bounds))


if __name__ == "__main__":
    main()
