"""Benchmark adaptive overlap against fixed overlap with a simulated crowd, through the real services.

Each task has K responses with hidden true qualities. Annotators rank with Plackett-Luce noise of
their own strength (the response drawn first with probability proportional to exp(beta * quality),
then the next among the rest, ...); one annotator is a spammer (beta = 0: uniformly random). Every
ranking goes through the platform's own path: project_create, prompts_import, assignment_lease_next
and ranking_submit (the submit transaction decides completion, as for people). The consensus of each
task is the platform's (consensus.task_consensus, Borda tiers); its pairwise accuracy is the share of
response pairs it orders as the hidden truth does (a consensus tie counts as wrong), as
correct/total with a 95% Wilson interval.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/ann_x .venv/bin/python bench/adaptive.py
    ... bench/adaptive.py --tasks 300 --k 4 --seed 1 --rules fixed3,adaptive2-5
    ... bench/adaptive.py --seeds 1,2,3 --rules fixed3,adaptive2-5,adaptive2-5@0.65,consensus2-3,consensus2-5

Rules: fixed<N> (overlap N), adaptive<M>-<N>[@X] (min overlap M, overlap N, adaptive rule "agreement" with
target X, default --target) and consensus<M>-<N> (adaptive rule "consensus": complete once the Borda consensus
has no tie); a rule ending in +w runs in a project whose consensus is reliability-weighted (consensus_weighting
"reliability": the weights of the agreement report refreshed after the last submission, as the worker does).

    ... bench/adaptive.py --seeds 1,2,3,4,5 --rules fixed3,fixed3+w,fixed2+w,consensus2-3+w
Writes throwaway projects and users (prefixed bench-adaptive-), deleted afterwards.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Noise strengths (PL beta) of the honest annotators; the crowd adds one spammer (beta 0).
CROWD_BETAS = (0.8, 1.2, 1.6, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)


@dataclass(frozen=True)
class Rule:
    name: str
    overlap: int
    min_overlap: int | None
    target: float | None = None  # adaptive: its own agreement target (else --target)
    adaptive_rule: str = "agreement"  # Project.adaptive_rule: "agreement" (target) or "consensus" (no tie)
    weighting: str = "none"  # Project.consensus_weighting: "none" or "reliability" (rule name ending in +w)


def parse_rule(text: str) -> Rule:
    if text.endswith("+w"):
        return dataclasses.replace(parse_rule(text[:-2]), name=text, weighting="reliability")
    fixed = re.fullmatch(r"fixed(\d+)", text)
    if fixed:
        return Rule(text, int(fixed.group(1)), None)
    adaptive = re.fullmatch(r"adaptive(\d+)-(\d+)(?:@([0-9.]+))?", text)
    if adaptive:
        target = float(adaptive.group(3)) if adaptive.group(3) else None
        return Rule(text, int(adaptive.group(2)), int(adaptive.group(1)), target)
    consensus = re.fullmatch(r"consensus(\d+)-(\d+)", text)
    if consensus:
        return Rule(text, int(consensus.group(2)), int(consensus.group(1)), adaptive_rule="consensus")
    raise SystemExit(f"bad rule {text!r}: fixed<N>, adaptive<M>-<N>[@target] or consensus<M>-<N>, each optionally +w")


def plackett_luce(rng: random.Random, qualities: dict[int, float], beta: float) -> list[list[int]]:
    """One ranking (tiers of one) drawn by Plackett-Luce with weights exp(beta * quality)."""
    left, out = dict(qualities), []
    while left:
        top = max(left.values())
        ids = list(left)
        [pick] = rng.choices(ids, weights=[math.exp(beta * (left[rid] - top)) for rid in ids])
        out.append([pick])
        del left[pick]
    return out


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    from training.evaluation import wilson_interval

    return wilson_interval(successes, n, z=z)


def simulate(*, rule: Rule, tasks: int, k: int, target: float, seed: int, tag: str, betas: tuple[float, ...],
             scale: tuple[float, float]) -> dict:
    from annotation.models import Ranking, RankingTask, Response
    from annotation.services.agreement_cache import agreement_report_refresh
    from annotation.services.assignment import NoTask, assignment_lease_next
    from annotation.services.consensus import task_consensus
    from annotation.services.importing import prompts_import
    from annotation.services.projects import membership_add, project_create, user_create
    from annotation.services.ranking import ranking_submit
    from annotation.services.reliability import consensus_weights, ranking_weights

    rng = random.Random(seed)
    truth_rng = random.Random(seed * 7919 + 1)  # the same hidden truth for every rule
    project = project_create(name=f"bench-adaptive-{tag}-{rule.name}", responses_per_prompt=k, overlap=rule.overlap,
                             min_overlap=rule.min_overlap, agreement_target=rule.target if rule.target is not None else target,
                             adaptive_rule=rule.adaptive_rule, consensus_weighting=rule.weighting)
    lines, truth_by_text = [], {}
    for i in range(tasks):
        responses = []
        spread = math.exp(truth_rng.gauss(*scale))  # tasks differ in difficulty: some clear, some contested
        for j in range(k):
            text = f"task {i} response {j}"
            truth_by_text[text] = spread * truth_rng.gauss(0.0, 1.0)
            responses.append(text)
        lines.append(json.dumps({"id": f"t{i}", "prompt": f"Question {i}?", "responses": responses}))
    prompts_import(project=project, fileobj=io.BytesIO("\n".join(lines).encode()), file_format="jsonl")
    quality = {rid: truth_by_text[text] for rid, text in Response.objects.filter(prompt__project=project).values_list("id", "text")}

    crowd = [(f"bench-adaptive-{tag}-{rule.name}-{n}", beta) for n, beta in enumerate((*betas, 0.0))]
    people = []
    for username, beta in crowd:
        user = user_create(username=username).user
        membership_add(project=project, user=user, role="annotator")
        people.append((user, beta))

    started = time.perf_counter()
    idle = 0
    while idle < len(people):  # stop once a whole round of the crowd found nothing
        rng.shuffle(people)
        idle = 0
        for user, beta in people:
            got = assignment_lease_next(project=project, annotator=user)
            if isinstance(got, NoTask):
                idle += 1
                continue
            by_response = {rid: opaque for opaque, rid in got.opaque_ids.items()}
            tiers = plackett_luce(rng, {rid: quality[rid] for rid in by_response}, beta)
            ranking_submit(assignment_id=got.pk, annotator=user, ranking=[[by_response[r] for r in tier] for tier in tiers])
    seconds = time.perf_counter() - started

    # What the worker's agreement refresh does after submissions: the report, with the reliability weights
    # a weighted project's consensus then reads (annotation.services.reliability.consensus_weights).
    agreement_report_refresh(project_id=project.pk)
    weights = consensus_weights(project=project)
    rankings: dict[int, list] = {}
    annotators: dict[int, list] = {}
    for task_id, annotator_id, tiers in Ranking.objects.filter(project=project).order_by("id").values_list(
            "task_id", "annotator_id", "tiers"):
        rankings.setdefault(task_id, []).append(tiers)
        annotators.setdefault(task_id, []).append(annotator_id)
    correct = total = 0
    for task in RankingTask.objects.filter(project=project).prefetch_related("responses"):
        ids = [r.pk for r in task.responses.all()]
        position = {}
        counts = ranking_weights(weights, annotators.get(task.pk, []))
        for place, tier in enumerate(task_consensus(rankings.get(task.pk, []), weights=counts).tiers):
            for rid in tier:
                position[rid] = place
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                better, worse = (ids[a], ids[b]) if quality[ids[a]] > quality[ids[b]] else (ids[b], ids[a])
                total += 1
                correct += int(better in position and worse in position and position[better] < position[worse])
    incomplete = RankingTask.objects.filter(project=project, is_complete=False).count()
    spent = sum(len(v) for v in rankings.values())
    project.delete()
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username__startswith=f"bench-adaptive-{tag}-").delete()
    return {"rule": rule.name, "rankings": spent, "per_task": spent / tasks, "correct": correct, "pairs": total,
            "ci": wilson(correct, total), "incomplete": incomplete, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--target", type=float, default=0.8, help="agreement target of the adaptive rules")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", default="", help="comma-separated seeds (overrides --seed): a table per seed, then all pooled")
    parser.add_argument("--rules", default="fixed3,adaptive2-5")
    parser.add_argument("--betas", default=",".join(str(b) for b in CROWD_BETAS),
                        help="the honest annotators' Plackett-Luce strengths (a spammer, beta 0, is always added)")
    parser.add_argument("--scale", default="0.7,0.6",
                        help="MU,SIGMA: each task's qualities are exp(N(MU, SIGMA)) x N(0, 1) (its difficulty varies)")
    args = parser.parse_args()

    import django

    django.setup()
    rules = [parse_rule(text) for text in args.rules.split(",")]
    tag = f"{os.getpid()}"
    betas = tuple(float(b) for b in args.betas.split(","))
    mu, sigma = (float(x) for x in args.scale.split(","))
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    by_seed = {seed: [simulate(rule=r, tasks=args.tasks, k=args.k, target=args.target, seed=seed, tag=tag, betas=betas,
                               scale=(mu, sigma)) for r in rules] for seed in seeds}

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"crowd: betas {', '.join(str(b) for b in betas)} and one spammer (beta 0); {args.tasks} tasks x K={args.k}; "
          f"qualities exp(N({mu}, {sigma})) x N(0, 1) per task; "
          f"adaptive target {args.target}; seeds {', '.join(map(str, seeds))}; load average {os.getloadavg()[0]:.2f}")
    tables = [(f"seed {seed}", results) for seed, results in by_seed.items()]
    if len(seeds) > 1:  # every seed's tasks and rankings together (the same rules on the same hidden truths)
        pooled = []
        for i, rule in enumerate(rules):
            rows = [results[i] for results in by_seed.values()]
            spent, correct, pairs = (sum(row[key] for row in rows) for key in ("rankings", "correct", "pairs"))
            pooled.append({"rule": rule.name, "rankings": spent, "per_task": spent / (args.tasks * len(seeds)), "correct": correct,
                           "pairs": pairs, "ci": wilson(correct, pairs), "incomplete": sum(row["incomplete"] for row in rows),
                           "seconds": sum(row["seconds"] for row in rows)})
        tables.append((f"all {len(seeds)} seeds pooled", pooled))
    name_width = max(16, *(len(rule.name) + 2 for rule in rules))
    for title, results in tables:
        base = results[0]
        versus = max(12, len(base["rule"]) + 5)
        print(f"-- {title}")
        print(f"{'rule':<{name_width}}{'rankings':>9}{'per task':>9}{'vs ' + base['rule']:>{versus}}{'pair accuracy':>22}"
              f"{'95% Wilson':>18}{'open':>6}{'s':>7}")
        for r in results:
            saved = 1 - r["rankings"] / base["rankings"]
            print(f"{r['rule']:<{name_width}}{r['rankings']:>9}{r['per_task']:>9.2f}{-saved:>+{versus}.1%}"
                  f"{r['correct']:>11}/{r['pairs']:<6}{r['correct'] / r['pairs']:>5.3f}"
                  f"   [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]{r['incomplete']:>6}{r['seconds']:>7.1f}")

if __name__ == "__main__":
    main()
