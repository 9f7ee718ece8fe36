"""Pair maths of one task: the Borda consensus and pair votes in one pass, and the pairs a policy emits.

Pure functions on plain data (no database). A ranking is a list of tiers of response ids, best
first. The definitions are those of annotation.services.consensus (Borda with ties) and
annotation.services.agreement (a task's pairwise agreement); the fused `task_summary` is checked
against the consensus module on random rankings (tests/export/test_export.py).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from annotation.errors import ApplicationError
from annotation.services.consensus import pair_counts_agreement, scores_to_tiers, task_consensus

Votes = dict[tuple[int, int], list[int]]  # (a, b) with a < b -> [a over b, b over a, ties]


def task_summary(rankings: list[list[list[int]]]) -> tuple[list[list[int]], Votes]:
    """The Borda consensus tiers and the pair votes of one task's rankings, in one pass.

    The same results as consensus.task_consensus(rankings).tiers and consensus.pair_votes(rankings)
    (a test checks this on random rankings), fused because the export runs it for every task:
    at a million rankings the two separate passes were a third of the export's time.
    """
    borda: dict[int, float] = {}
    votes: Votes = {}
    get = votes.get
    for tiers in rankings:
        total = sum(map(len, tiers))
        if total == len(tiers):  # no ties (the common case): a plain order, no tier bookkeeping
            order = [tier[0] for tier in tiers]
            for index, a in enumerate(order):
                borda[a] = borda.get(a, 0.0) + (total - 1 - index)
                for b in order[index + 1 :]:
                    key, slot = ((a, b), 0) if a < b else ((b, a), 1)
                    counts = get(key)
                    if counts is None:
                        counts = votes[key] = [0, 0, 0]
                    counts[slot] += 1
            continue
        above = 0
        placed = []
        for index, tier in enumerate(tiers):
            size = len(tier)
            score = total - above - size + 0.5 * (size - 1)
            for item in tier:
                borda[item] = borda.get(item, 0.0) + score
                placed.append((item, index))
            above += size
        placed.sort()
        for i, (a, tier_a) in enumerate(placed):
            for b, tier_b in placed[i + 1 :]:
                counts = get((a, b))
                if counts is None:
                    counts = votes[(a, b)] = [0, 0, 0]
                counts[0 if tier_a < tier_b else 1 if tier_b < tier_a else 2] += 1
    return scores_to_tiers(borda), votes


def votes_agreement(votes: Votes) -> float | None:
    """The task's pairwise agreement (annotation.services.consensus.pair_counts_agreement) from its votes."""
    return pair_counts_agreement(votes.values())


def consensus_pairs(tiers: list[list[int]], policy: str) -> Iterator[tuple[int, int]]:
    """(better, worse) response pairs from consensus tiers under a policy; tied responses make none."""
    if policy == "all":
        for i, upper in enumerate(tiers):
            for lower in tiers[i + 1 :]:
                for better in upper:
                    for worse in lower:
                        yield better, worse
    elif policy == "best_vs_rest":
        for lower in tiers[1:]:
            for better in tiers[0]:
                for worse in lower:
                    yield better, worse
    elif policy == "adjacent":
        for upper, lower in zip(tiers, tiers[1:], strict=False):
            for better in upper:
                for worse in lower:
                    yield better, worse
    else:  # validated earlier; a bad stored option must not export something else silently
        raise ApplicationError(f"Unknown pair policy {policy!r}.", fields={"policy": ["unknown"]})


def tiers_restrict(tiers: list[list[int]], keep: set[int]) -> list[list[int]]:
    """The tiers with only the items in `keep` (empty tiers dropped)."""
    out = [[item for item in tier if item in keep] for tier in tiers]
    return [tier for tier in out if tier]


def tiers_as_ints(tiers: Any) -> list[list[int]]:
    return [[int(item) for item in tier] for tier in tiers]


@dataclass
class Plan:
    """What a task of one shape exports, over local labels (see rows.RowBuilder.plan)."""

    consensus: list[list[int]]
    agreement: float | None
    pairs: list[tuple[int, int, int, int, float]]  # (chosen, rejected, votes chosen, votes rejected, margin)
    tied: int  # pairs dropped because the consensus ties them
    contradicted: int  # pairs dropped because their own votes do not favour the consensus order
    without_votes: int  # pairs dropped because no ranking showed both


def weighted_votes(rankings: list[list[list[int]]], weights: tuple[float, ...]) -> Votes:
    """Pair votes as task_summary counts them, each ranking counting its weight: (a, b), a < b ->
    [weight of a over b, of b over a, of ties]."""
    votes: dict[tuple[int, int], list[float]] = {}
    for tiers, weight in zip(rankings, weights, strict=True):
        placed = sorted((item, index) for index, tier in enumerate(tiers) for item in tier)
        for i, (a, tier_a) in enumerate(placed):
            for b, tier_b in placed[i + 1 :]:
                counts = votes.setdefault((a, b), [0.0, 0.0, 0.0])
                counts[0 if tier_a < tier_b else 1 if tier_b < tier_a else 2] += weight
    return votes  # type: ignore[return-value]


def plan_make(tiers_list: list, policy: str, weights: tuple[float, ...] | None = None) -> Plan:
    """The consensus, agreement and policy pairs of one task's rankings.

    With `weights` (one per ranking, the project's reliability weights) the consensus is the weighted
    Borda one, a pair is kept when its weighted votes favour the consensus order, and its margin is
    the weighted share; the vote columns and the agreement stay counts of people.
    """
    consensus, votes = task_summary(tiers_list)
    decisive = votes
    if weights is not None:
        consensus = task_consensus(tiers_list, weights=weights).tiers
        decisive = weighted_votes(tiers_list, weights)
    pairs = []
    contradicted = without_votes = 0
    for better, worse in consensus_pairs(consensus, policy):
        key, flipped = ((better, worse), False) if better < worse else ((worse, better), True)
        counts = votes.get(key)
        if counts is None:  # never ranked side by side (incomplete rankings): no evidence
            without_votes += 1
            continue
        chosen_votes, rejected_votes = (counts[1], counts[0]) if flipped else (counts[0], counts[1])
        weighed = decisive[key]
        chosen_weight, rejected_weight = (weighed[1], weighed[0]) if flipped else (weighed[0], weighed[1])
        if chosen_weight <= rejected_weight:
            # Borda can order a pair against its own head-to-head votes; such a pair is noise.
            contradicted += 1
        else:
            pairs.append((better, worse, chosen_votes, rejected_votes, round(chosen_weight / sum(weighed), 6)))
    tied = sum(len(t) * (len(t) - 1) // 2 for t in consensus)
    return Plan(consensus, votes_agreement(votes), pairs, tied, contradicted, without_votes)
