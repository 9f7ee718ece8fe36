"""Consensus of several rankings of one task: Borda with ties, Bradley-Terry, pair vote margins.

A ranking is a list of tiers of response ids, best first: [[3], [1, 2]] means 3 > 1 = 2.
These are pure functions on plain data; agreement.py, export.py, assignment.py and ranking.py call them.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

Tiers = Sequence[Sequence[Hashable]]


def tiers_to_ranks(tiers: Tiers) -> dict[Hashable, float]:
    """Rank of each item, 1 = best; tied items share the mean of the ranks they span."""
    ranks: dict[Hashable, float] = {}
    position = 1
    for tier in tiers:
        mean_rank = position + (len(tier) - 1) / 2
        for item in tier:
            ranks[item] = mean_rank
        position += len(tier)
    return ranks


def borda_scores(rankings: Sequence[Tiers], weights: Sequence[float] | None = None) -> dict[Hashable, float]:
    """Borda with ties: an item scores 1 for each item below it and 1/2 for each item tied with it,
    times the ranking's weight when `weights` (one per ranking: reliability.ConsensusWeights) is given."""
    scores: dict[Hashable, float] = {}
    for index, tiers in enumerate(rankings):
        weight = 1.0 if weights is None else float(weights[index])
        total = sum(len(tier) for tier in tiers)
        above = 0
        for tier in tiers:
            below = total - above - len(tier)
            for item in tier:
                scores[item] = scores.get(item, 0.0) + weight * (below + 0.5 * (len(tier) - 1))
            above += len(tier)
    return scores


def scores_to_tiers(scores: dict[Hashable, float], *, tolerance: float = 1e-9) -> list[list[Hashable]]:
    """Group items into tiers, best first; equal scores (within tolerance) share a tier."""
    ordered = sorted(scores.items(), key=lambda kv: (-kv[1], str(kv[0])))
    tiers: list[list[Hashable]] = []
    last: float | None = None
    for item, score in ordered:
        if last is not None and abs(score - last) <= tolerance:
            tiers[-1].append(item)
        else:
            tiers.append([item])
        last = score
    return tiers


@dataclass
class PairVotes:
    """Votes between two items a and b over all rankings that contain both."""

    a: Hashable
    b: Hashable
    a_over_b: int = 0
    b_over_a: int = 0
    ties: int = 0

    @property
    def total(self) -> int:
        return self.a_over_b + self.b_over_a + self.ties


def pair_votes(rankings: Sequence[Tiers]) -> dict[tuple[Hashable, Hashable], PairVotes]:
    """For each unordered pair (keyed with the smaller id first), how the rankings ordered it."""
    votes: dict[tuple[Hashable, Hashable], PairVotes] = {}
    for tiers in rankings:
        ranks = tiers_to_ranks(tiers)
        for a, b in combinations(sorted(ranks, key=str), 2):
            pair = votes.setdefault((a, b), PairVotes(a, b))
            if ranks[a] < ranks[b]:
                pair.a_over_b += 1
            elif ranks[b] < ranks[a]:
                pair.b_over_a += 1
            else:
                pair.ties += 1
    return votes


def bradley_terry_strengths(rankings: Sequence[Tiers], *, alpha: float = 0.01) -> dict[Hashable, float]:
    """Bradley-Terry log-strengths from the pairwise wins implied by the rankings (ties ignored).

    Uses choix's iterative Luce spectral ranking with a small regularisation `alpha`, which keeps
    the estimate finite when an item wins every comparison (common with three annotators).
    """
    import choix

    items = sorted({item for tiers in rankings for tier in tiers for item in tier}, key=str)
    index = {item: i for i, item in enumerate(items)}
    comparisons = []
    for pair in pair_votes(rankings).values():
        comparisons += [(index[pair.a], index[pair.b])] * pair.a_over_b
        comparisons += [(index[pair.b], index[pair.a])] * pair.b_over_a
    if len(items) < 2:
        return {item: 0.0 for item in items}
    params = choix.ilsr_pairwise(len(items), comparisons, alpha=alpha)
    return {item: float(params[index[item]]) for item in items}


@dataclass
class Consensus:
    tiers: list[list[Hashable]]
    borda: dict[Hashable, float]
    bradley_terry: dict[Hashable, float] = field(default_factory=dict)
    votes: int = 0


def task_consensus(rankings: Sequence[Tiers], *, with_bradley_terry: bool = False,
                   weights: Sequence[float] | None = None) -> Consensus:
    """The consensus ranking of one task (Borda tiers, each ranking counting its weight when `weights` is
    given), optionally with Bradley-Terry strengths (unweighted)."""
    if weights is not None and len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    borda = borda_scores(rankings, weights)
    strengths = bradley_terry_strengths(rankings) if with_bradley_terry and rankings else {}
    return Consensus(tiers=scores_to_tiers(borda), borda=borda, bradley_terry=strengths, votes=len(rankings))


def tiers_problems(*, tiers: Any, allowed: set, allow_ties: bool) -> list[str]:
    """What is wrong with `tiers` as a ranking of exactly the ids in `allowed` (empty when valid)."""
    if not isinstance(tiers, list) or not tiers:
        return ["must be a non-empty list of tiers (lists of response ids), best first"]
    seen: list = []
    problems: list[str] = []
    for i, tier in enumerate(tiers):
        if not isinstance(tier, list) or not tier:
            problems.append(f"tier {i + 1} must be a non-empty list of response ids")
            continue
        if len(tier) > 1 and not allow_ties:
            problems.append(f"tier {i + 1} ties {len(tier)} responses, but this project does not allow ties")
        seen.extend(tier)
    if problems:
        return problems
    normalised = [str(x) for x in seen]
    allowed_str = {str(x) for x in allowed}
    unknown = sorted({x for x in normalised if x not in allowed_str})
    if unknown:
        problems.append(f"unknown response ids: {', '.join(unknown)} (use the ids shown for this assignment)")
    duplicated = sorted({x for x in normalised if normalised.count(x) > 1})
    if duplicated:
        problems.append(f"responses named more than once: {', '.join(duplicated)}")
    missing = sorted(allowed_str - set(normalised))
    if missing:
        problems.append(f"responses missing from the ranking: {', '.join(missing)} (every shown response exactly once)")
    return problems


def pair_counts_agreement(counts: Iterable[Sequence[int]]) -> float | None:
    """Pairwise agreement of one task from its pair vote counts; None when no pair was ranked twice.

    `counts` holds, for each response pair of the task, (rankings that put the first above the
    second, the reverse, ties). Two annotators agree on a pair when they order it the same way
    (better, worse or tied); the result is the share of agreeing annotator pairs, pooled over the
    response pairs: the report's `pairwise_agreement` restricted to one task. Rounded to 6 places.
    """
    agree = total = 0
    for x, y, z in counts:
        n = x + y + z
        if n > 1:
            total += n * (n - 1) // 2
            agree += (x * (x - 1) + y * (y - 1) + z * (z - 1)) // 2
    return round(agree / total, 6) if total else None


def task_agreement(rankings: Sequence[Tiers]) -> float | None:
    """Pairwise agreement of one task's rankings (see `pair_counts_agreement`); None with fewer than two."""
    if len(rankings) < 2:
        return None
    return pair_counts_agreement((p.a_over_b, p.b_over_a, p.ties) for p in pair_votes(rankings).values())
