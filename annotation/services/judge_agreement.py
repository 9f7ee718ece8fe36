"""The judge measured against people, and people against each other, on the same statistic (MT-Bench style).

Every figure is a count over a count with its 95% Wilson interval on the whole counts:

- a pair's **human label** is its consensus over the task's human rankings: the response more
  rankings put higher, or `tie` when as many put each higher (or all tied them);
- the **judge's label** of a comparison is the response both orders picked; when the two orders
  disagree (the answer flipped with the position) the judge's label is `tie` (as MT-Bench counts
  an inconsistent judge);
- `judge_human_agreement`: over compared pairs where both labels name a response, the share where
  they name the same one; `judge_human_agreement_with_ties`: over every compared pair with a human
  label, the share where the labels (a, b or tie) are equal;
- `human_human_agreement` (and `_with_ties`): the same between two people who ranked the same
  task, over every pair of people and every pair of its responses;
- `swap_consistency`: share of comparisons whose two orders picked the same response;
- `first_position_rate`: share of raw answers (two per comparison) that picked the response shown first;
- `length_preference`: share of decided pairs whose responses differ in length won by the longer
  one, for the judge and for the people (human consensus over every ranked pair);
- `per_principle`: judge-human agreement (without ties) of the comparisons asked under each principle.
"""
from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Any, Literal

from annotation.models import JudgeComparison, JudgeRanking, JudgeRun, Project, Ranking, RankingTask, Response
from annotation.services.consensus import tiers_to_ranks
from annotation.services.ranking_filter import RankingFilter, ranking_filter_queryset
from annotation.services.reliability import ConsensusWeights, consensus_weights, ranking_weights


def wilson(successes: int, n: int, z: float = 1.96) -> list[float] | None:
    """95% Wilson score interval of successes / n (None when n is 0)."""
    if n <= 0:
        return None
    from training.evaluation import wilson_interval

    low, high = wilson_interval(successes, n, z=z)
    return [round(low, 4), round(high, 4)]


def share(successes: int, n: int) -> dict[str, Any]:
    """{"value", "count", "n", "ci95"}: an exact count over a count with its interval."""
    return {"value": round(successes / n, 4) if n else None, "count": successes, "n": n, "ci95": wilson(successes, n)}


def pair_label(ranks: dict, a: int, b: int) -> str:
    """'a', 'b' or 'tie' for one person's tiers (as ranks)."""
    if ranks[a] < ranks[b]:
        return "a"
    if ranks[b] < ranks[a]:
        return "b"
    return "tie"


def consensus_labels(rankings: list[list[list[int]]], weights: list[float] | None = None) -> dict[tuple[int, int], str]:
    """(a, b) with a < b -> the human consensus label over these rankings of one task: the pair's majority,
    each ranking counting its weight when `weights` (the project's reliability weights) is given."""
    votes: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for index, tiers in enumerate(rankings):
        weight = 1.0 if weights is None else weights[index]
        ranks = tiers_to_ranks(tiers)
        for a, b in combinations(sorted(ranks), 2):
            label = pair_label(ranks, a, b)
            if label == "a":
                votes[(a, b)][0] += weight
            elif label == "b":
                votes[(a, b)][1] += weight
            else:
                votes.setdefault((a, b), votes[(a, b)])
    return {pair: "a" if up > down else "b" if down > up else "tie" for pair, (up, down) in votes.items()}


def judge_label(*, p_first: float, p_second: float, orders_agree: bool) -> str:
    if not orders_agree:
        return "tie"
    return "a" if (p_first + p_second) / 2 > 0.5 else "b"


def _agreement(labels: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(without ties, with ties) agreement of (x, y) label pairs."""
    strict = [(x, y) for x, y in labels if x != "tie" and y != "tie"]
    return share(sum(x == y for x, y in strict), len(strict)), share(sum(x == y for x, y in labels), len(labels))


def human_human_labels(rankings_by_task: dict[int, list[list[list[int]]]]) -> list[tuple[str, str]]:
    """Label pairs of two people on the same pair of the same task, for every two people and every pair."""
    out: list[tuple[str, str]] = []
    for rankings in rankings_by_task.values():
        ranks = [tiers_to_ranks(tiers) for tiers in rankings]
        for first, second in combinations(ranks, 2):
            for a, b in combinations(sorted(set(first) & set(second)), 2):
                out.append((pair_label(first, a, b), pair_label(second, a, b)))
    return out


def judge_agreement_compute(*, project: Project, run: JudgeRun | None = None, filters: RankingFilter | None = None,
                            weights: ConsensusWeights | None | Literal["stored"] = "stored") -> dict[str, Any] | None:
    """The `judge` section of the agreement report: `run` (default: the latest run with comparisons)
    against the project's human rankings (restricted by `filters`, resolved). None without any judge run.
    `weights`: the people's consensus weights, by default the stored report's (reliability.consensus_weights)."""
    if run is None:
        run = JudgeRun.objects.filter(project=project, comparisons_done__gt=0).select_related("constitution").order_by("-id").first()
    if run is None:
        return None
    rankings = Ranking.objects.filter(project=project)
    if filters is not None and not filters.is_empty:
        rankings = ranking_filter_queryset(rankings, filters)
    by_task: dict[int, list] = defaultdict(list)
    annotators: dict[int, list] = defaultdict(list)
    for task_id, annotator_id, tiers in rankings.values_list("task_id", "annotator_id", "tiers"):
        by_task[task_id].append(tiers)
        annotators[task_id].append(annotator_id)
    if weights == "stored":
        weights = consensus_weights(project=project)
    human = {tid: consensus_labels(tiers, ranking_weights(weights, annotators[tid])) for tid, tiers in by_task.items()}
    lengths = dict(Response.objects.filter(prompt__project=project).values_list("id", "text"))
    lengths = {rid: len(text) for rid, text in lengths.items()}

    comparisons = list(JudgeComparison.objects.filter(run=run).values_list(
        "task_id", "response_a_id", "response_b_id", "principle", "p_first", "p_second", "orders_agree", "failed"))
    judged = [c for c in comparisons if not c[7]]
    pairs: list[tuple[str, str]] = []
    by_principle: dict[str, list[tuple[str, str]]] = defaultdict(list)
    consistent = first_picks = answers = 0
    judge_longer = judge_length_n = 0
    for tid, a, b, principle, p_first, p_second, agree, _ in judged:
        label = judge_label(p_first=p_first, p_second=p_second, orders_agree=bool(agree))
        consistent += bool(agree)
        # The response shown first: a in the first order (its P is p_first), b in the second (P(b) = 1 - p_second).
        for p_shown_first in (p_first, 1 - p_second):
            if p_shown_first != 0.5:
                answers += 1
                first_picks += p_shown_first > 0.5
        if label != "tie" and lengths.get(a) != lengths.get(b):
            judge_length_n += 1
            judge_longer += (lengths[a] > lengths[b]) == (label == "a")
        people = human.get(tid, {}).get((a, b))
        if people is not None:
            pairs.append((label, people))
            by_principle[principle].append((label, people))

    human_longer = human_length_n = 0
    for labels in human.values():
        for (a, b), label in labels.items():
            if label != "tie" and lengths.get(a) != lengths.get(b):
                human_length_n += 1
                human_longer += (lengths[a] > lengths[b]) == (label == "a")

    agreement, with_ties = _agreement(pairs)
    hh, hh_ties = _agreement(human_human_labels(by_task))
    return {
        "run": {"id": run.pk, "status": run.status, "backend": run.backend, "model_name": run.model_name,
                "model_revision": run.model_revision, "constitution_version": run.constitution.version, "pairs": run.pairs},
        "comparisons": len(judged),
        "comparisons_failed": len(comparisons) - len(judged),
        "compared_with_people": len(pairs),
        "judge_human_agreement": agreement,
        "judge_human_agreement_with_ties": with_ties,
        "human_human_agreement": hh,
        "human_human_agreement_with_ties": hh_ties,
        "swap_consistency": share(consistent, len(judged)),
        "first_position_rate": share(first_picks, answers),
        "length_preference": {"judge": share(judge_longer, judge_length_n), "people": share(human_longer, human_length_n)},
        "per_principle": [
            {"principle": principle, "comparisons": sum(1 for c in judged if c[3] == principle),
             "judge_human_agreement": _agreement(labels)[0]}
            for principle, labels in sorted(by_principle.items())
        ],
        "routing": judge_routing_stats(project=project, run=run, weights=weights),
    }


def judge_routing_stats(*, project: Project, run: JudgeRun, weights: ConsensusWeights | None) -> dict[str, Any]:
    """What routing (Project.judge_routing) did: confident tasks, human rankings it saved, the audit's agreement."""
    from annotation.services.judge_routing import audited_task_ids

    confident = set(JudgeRanking.objects.filter(run=run, confident=True).values_list("task_id", flat=True))
    audited = audited_task_ids(project=project, task_ids=confident) if project.judge_routing == "uncertain" else set()
    skipped = confident - audited if project.judge_routing == "uncertain" else set()
    # Closed by routing (complete without its rankings): each would have needed `overlap` people.
    closed = RankingTask.objects.filter(pk__in=skipped, is_complete=True).values_list("overlap", "submitted_count")
    saved = sum(max(0, overlap - submitted) for overlap, submitted in closed)
    # Audit agreement: the judge's ranking against people on the audited confident tasks.
    audit_pairs: list[tuple[str, str]] = []
    if audited:
        by_task: dict[int, list] = defaultdict(list)
        annotators: dict[int, list] = defaultdict(list)
        for task_id, annotator_id, tiers in Ranking.objects.filter(task_id__in=audited).values_list("task_id", "annotator_id", "tiers"):
            by_task[task_id].append(tiers)
            annotators[task_id].append(annotator_id)
        for tid, tiers in JudgeRanking.objects.filter(run=run, task_id__in=by_task).values_list("task_id", "tiers"):
            ranks = tiers_to_ranks(tiers)
            people = consensus_labels(by_task[tid], ranking_weights(weights, annotators[tid]))
            audit_pairs += [(pair_label(ranks, a, b), label) for (a, b), label in people.items() if a in ranks and b in ranks]
    return {
        "mode": project.judge_routing,
        "confidence": project.judge_confidence,
        "audit_rate": project.judge_audit_rate,
        "confident_tasks": len(confident),
        "audited_tasks": len(audited),
        "human_rankings_saved": saved,
        "audit_agreement": _agreement(audit_pairs)[0],
    }
