"""A task's pairwise agreement has one definition (agreement.task_agreement): the report's pairwise agreement on one task."""
from __future__ import annotations

import random

import numpy as np
import pytest

from annotation.services.agreement import RankData, agreement_compute
from annotation.services.consensus import pair_counts_agreement, task_agreement, tiers_to_ranks
from annotation.services.export.pairs import task_summary, votes_agreement


def report_pairwise_agreement(rankings: list[list[list[int]]]) -> float | None:
    items = sorted({i for tiers in rankings for tier in tiers for i in tier})
    ranks = np.full((len(rankings), len(items)), np.nan)
    for row, tiers in enumerate(rankings):
        for item, rank in tiers_to_ranks(tiers).items():
            ranks[row, items.index(item)] = rank
    data = RankData(ranks=ranks, task=np.zeros(len(rankings), dtype=int), annotator=np.arange(len(rankings)), n_tasks=1,
                    n_annotators=len(rankings))
    return agreement_compute(data, bootstrap=0)["pairwise_agreement"]


def test_the_hand_computed_case():
    # AB: 2 of 3 annotators agree -> 1 agreeing pair of 3; AC: 3 of 3; BC: 1 of 3 -> 5/9.
    assert task_agreement([[[1], [2], [3]], [[1], [3], [2]], [[2], [1], [3]]]) == pytest.approx(5 / 9, abs=1e-6)
    assert task_agreement([[[1], [2]]]) is None
    assert pair_counts_agreement([(1, 0, 0)]) is None  # no pair ranked twice


def test_on_random_tasks_it_is_the_reports_pairwise_agreement_and_what_the_export_computes():
    rng = random.Random(3)
    for _ in range(300):
        items = rng.sample(range(1, 30), rng.randint(2, 5))
        rankings = []
        for _ in range(rng.randint(2, 5)):
            tiers: list[list[int]] = []
            for item in rng.sample(items, rng.randint(2, len(items))):  # partial rankings and ties too
                if tiers and rng.random() < 0.3:
                    tiers[-1].append(item)
                else:
                    tiers.append([item])
            rankings.append(tiers)
        ours = task_agreement(rankings)
        assert ours == votes_agreement(task_summary(rankings)[1])
        report = report_pairwise_agreement(rankings)
        assert (ours is None and report is None) or ours == pytest.approx(report, abs=1e-4)
