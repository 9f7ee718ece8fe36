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

--weights estimated|oracle asks the same of the reliability-weighted consensus (a project's
consensus_weighting "reliability"): each ranking's Borda points count log(p / (1 - p)) for its
annotator, p their chance of ordering a pair right, either estimated as the platform does from how
often annotators agree with each other (annotation.services.reliability), here on the first two
rankings of every task, or measured against the truth (oracle). It also prints a rule any platform
can run with that consensus: two rankings, a third where they agree on fewer than 0.8 of the pairs.

    .venv/bin/python bench/adaptive_bound.py --seeds 1,2,3,4,5 [--weights estimated]
"""
from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from annotation.services.consensus import task_consensus  # noqa: E402  (pure functions, no Django)
from annotation.services.reliability import annotator_skills, log_odds_weight  # noqa: E402
from bench.adaptive import CROWD_BETAS, plackett_luce  # noqa: E402


def correct_pairs(rankings: list, quality: dict[int, float], weights: list[float] | None = None) -> int:
    """Pairs the consensus orders as the hidden truth does (a consensus tie is wrong): the platform's Borda
    consensus, or with `weights` a Borda consensus where each ranking's points count its annotator's weight."""
    place = {rid: i for i, tier in enumerate(task_consensus(rankings, weights=weights).tiers) for rid in tier}
    ids = sorted(quality)
    return sum(1 for i, a in enumerate(ids) for b in ids[i + 1:]
               if place[a if quality[a] > quality[b] else b] < place[b if quality[a] > quality[b] else a])


def crowd_draws(*, seed: int, tasks: int, k: int, most: int, crowd: tuple[float, ...],
                scale: tuple[float, float]) -> list[tuple[dict[int, float], list[int], list]]:
    """Per task: hidden qualities, its annotators (indices into `crowd`, in serving order) and their rankings."""
    rng, truth_rng = random.Random(seed), random.Random(seed * 7919 + 1)
    out = []
    for _ in range(tasks):
        spread = math.exp(truth_rng.gauss(*scale))
        quality = {j: spread * truth_rng.gauss(0.0, 1.0) for j in range(k)}
        people = rng.sample(range(len(crowd)), most)  # the same draw as sampling the crowd itself
        out.append((quality, people, [plackett_luce(rng, quality, crowd[person]) for person in people]))
    return out


def crowd_tasks(draws: list[tuple[dict[int, float], list[int], list]], *, crowd_size: int,
                weights: str = "none") -> list[list[int]]:
    """Per task of `draws` (crowd_draws), the correct pairs of the consensus of its first n rankings, n = 1..most.

    weights: "none" (the platform's consensus), "estimated" (each annotator weighted as the platform's
    reliability weighting does, from the first two rankings of every task, what any rule with min
    overlap 2 has), or "oracle" (the log-odds of each annotator's true chance of ordering a pair
    right, measured on the draws: the most weighting could give).
    """
    if weights == "none":
        weight_of = None
    elif weights == "estimated":
        weight_of = weights_estimate([(quality, people[:2], ranked[:2]) for quality, people, ranked in draws], crowd_size)
    else:
        weight_of = [log_odds_weight(q) for q in skills_true(draws, crowd_size)]
    return [[correct_pairs(ranked[:n], quality, None if weight_of is None else [weight_of[p] for p in people[:n]])
             for n in range(1, len(ranked) + 1)] for quality, people, ranked in draws]


def _pair_orders(tiers: list) -> dict[tuple[int, int], bool]:
    place = {rid: i for i, (rid,) in enumerate(tiers)}
    ids = sorted(place)
    return {(a, b): place[a] < place[b] for i, a in enumerate(ids) for b in ids[i + 1:]}


def weights_estimate(tasks: list[tuple[dict, list[int], list]], crowd_size: int) -> list[float]:
    """Each annotator's weight as the platform estimates it (annotation.services.reliability: skills
    from how often annotators agree, no hidden truth) from these rankings' response pairs."""
    agree, total = np.zeros((crowd_size, crowd_size)), np.zeros((crowd_size, crowd_size))
    for _, people, ranked in tasks:
        orders = [_pair_orders(tiers) for tiers in ranked]
        for x in range(len(people)):
            for y in range(x + 1, len(people)):
                i, j = people[x], people[y]
                same = sum(orders[x][pair] == orders[y][pair] for pair in orders[x])
                for u, v in ((i, j), (j, i)):
                    agree[u, v] += same
                    total[u, v] += len(orders[x])
    return annotator_skills(agree=agree, compared=total, n_annotators=crowd_size).weight.tolist()


def skills_true(tasks: list[tuple[dict, list[int], list]], crowd_size: int) -> list[float]:
    """Each annotator's measured skill against the hidden truth over all their rankings (q = 2p - 1)."""
    right, total = [0] * crowd_size, [0] * crowd_size
    for quality, people, ranked in tasks:
        for person, tiers in zip(people, ranked, strict=True):
            for (a, b), a_first in _pair_orders(tiers).items():
                right[person] += a_first == (quality[a] > quality[b])
                total[person] += 1
    return [min(0.999, max(0.0, 2 * r / t - 1)) if t else 0.0 for r, t in zip(right, total, strict=True)]


def clairvoyant_bound(correct: list[list[int]], *, budget: float, least: int) -> float:
    """Upper bound on the correct pairs of any rule taking least..most rankings per task, budget in all."""
    best = math.inf
    for step in range(0, 601):
        lam = step * 0.01
        best = min(best, lam * budget + sum(max(c[n - 1] - lam * n for n in range(least, len(c) + 1)) for c in correct))
    return best


def agreement_then_third(draws: list, correct: list[list[int]], target: float) -> tuple[int, int]:
    """A rule any platform can run: two rankings; a third where the two agree on fewer than `target` of the pairs.
    Returns (rankings spent, correct pairs)."""
    spent = right = 0
    for (_, _, ranked), per_n in zip(draws, correct, strict=True):
        first, second = (_pair_orders(tiers) for tiers in ranked[:2])
        n = 2 if sum(first[p] == second[p] for p in first) >= target * len(first) else 3
        spent, right = spent + n, right + per_n[n - 1]
    return spent, right


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--most", type=int, default=7, help="the largest overlap a rule may use")
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--betas", default=",".join(str(b) for b in CROWD_BETAS))
    parser.add_argument("--scale", default="0.7,0.6")
    parser.add_argument("--weights", choices=("none", "estimated", "oracle"), default="none",
                        help="the consensus the bound and rules use: the platform's (none) or reliability-weighted")
    args = parser.parse_args()
    betas = tuple(float(b) for b in args.betas.split(","))
    mu, sigma = (float(x) for x in args.scale.split(","))
    pairs = args.tasks * args.k * (args.k - 1) // 2
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"crowd: betas {', '.join(str(b) for b in betas)} and one spammer; {args.tasks} tasks x K={args.k}; "
          f"up to {args.most} rankings per task; consensus weights: {args.weights}")
    weighted = args.weights != "none"
    header = f"{'seed':>5}{'fixed 3':>10}{'fixed 2':>10}" + "".join(f"{f'bound M=2 at {s:.0%}':>20}" for s in (0.70, 0.80, 0.90))
    if weighted:
        header = f"{'seed':>5}{'fixed 3 unweighted':>20}{'fixed 3':>10}{'fixed 2':>10}" + header[25:] + f"{'2, a 3rd below 0.8':>22}"
    print(header)
    for seed in (int(s) for s in args.seeds.split(",")):
        crowd = (*betas, 0.0)
        draws = crowd_draws(seed=seed, tasks=args.tasks, k=args.k, most=args.most, crowd=crowd, scale=(mu, sigma))
        correct = crowd_tasks(draws, crowd_size=len(crowd), weights=args.weights)
        fixed3, fixed2 = (sum(c[n - 1] for c in correct) / pairs for n in (3, 2))
        bounds = [clairvoyant_bound(correct, budget=share * 3 * args.tasks, least=2) / pairs for share in (0.70, 0.80, 0.90)]
        row = f"{seed:>5}{fixed3:>10.3f}{fixed2:>10.3f}" + "".join(f"{b:>20.3f}" for b in bounds)
        if weighted:
            plain3 = sum(c[2] for c in crowd_tasks(draws, crowd_size=len(crowd))) / pairs
            spent, right = agreement_then_third(draws, correct, 0.8)
            row = f"{seed:>5}{plain3:>20.3f}" + row[5:] + f"{f'{right / pairs:.3f} ({spent / (3 * args.tasks) - 1:+.0%})':>22}"
        print(row)


if __name__ == "__main__":
    main()
