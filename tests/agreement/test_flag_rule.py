"""The flag rule in small crowds, and the too-fast warning (annotation.services.agreement)."""
from __future__ import annotations

import numpy as np
from scipy import stats

from annotation.services.agreement import FAST_FACTOR, RankData, agreement_compute


def crowd(*, seed: int, n_tasks: int = 30, noise=(0.6, 1.0, None), k: int = 4, seconds=None, gold_every: int = 0) -> RankData:
    """Every annotator ranks every task: truth + N(0, noise) each, None = at random."""
    rng = np.random.default_rng(seed)
    ranks, task, who, secs = [], [], [], []
    gold = np.full((n_tasks, k), np.nan) if gold_every else None
    for t in range(n_tasks):
        truth = rng.normal(size=k)
        if gold_every and t % gold_every == 0:
            gold[t] = stats.rankdata(-truth)
        for a, sd in enumerate(noise):
            scores = rng.normal(size=k) if sd is None else truth + rng.normal(size=k) * sd
            ranks.append(stats.rankdata(-scores))
            task.append(t)
            who.append(a)
            secs.append((seconds or [30.0] * len(noise))[a] * rng.uniform(0.8, 1.2))
    return RankData(ranks=np.array(ranks, float), task=np.array(task), annotator=np.array(who), n_tasks=n_tasks,
                    n_annotators=len(noise), seconds=np.array(secs), gold=gold)


def test_with_three_annotators_the_random_ranker_is_flagged_as_no_better_than_chance():
    report = agreement_compute(crowd(seed=1), bootstrap=0)
    honest_a, honest_b, spammer = report["annotators"]
    # The relative rule alone cannot see it: one random ranker in three widens the spread.
    assert report["flag_threshold"] < spammer["agreement"]
    assert spammer["flagged"] and spammer["flag_reasons"] == ["agrees with nobody above chance"]
    assert spammer["best_partner"]["ci"][0] <= 0 and spammer["best_partner"]["tasks"] == 30
    assert not honest_a["flagged"] and not honest_b["flagged"]
    assert honest_a["best_partner"]["username"] == "1" and honest_a["best_partner"]["ci"][0] > 0


def test_over_many_small_crowds_the_random_ranker_is_flagged_and_the_honest_ones_rarely():
    reports = [agreement_compute(crowd(seed=seed), bootstrap=0)["annotators"] for seed in range(40)]
    spammer_flags = sum(r[2]["flagged"] for r in reports)
    honest_flags = sum(r[0]["flagged"] + r[1]["flagged"] for r in reports)
    assert spammer_flags >= 36  # of 40 (power of a 95% interval over 30 tasks)
    assert honest_flags <= 2  # of 80


def test_too_few_shared_tasks_flag_nobody_by_chance():
    report = agreement_compute(crowd(seed=2, n_tasks=6), bootstrap=0)
    assert not any("agrees with nobody above chance" in a["flag_reasons"] for a in report["annotators"])


def test_gold_tasks_flag_a_random_ranker_on_their_own():
    report = agreement_compute(crowd(seed=4, n_tasks=40, gold_every=2), bootstrap=0)
    spammer = report["annotators"][2]
    assert spammer["gold_tasks"] == 20 and "gold score not above chance" in spammer["flag_reasons"]
    assert all(a["gold_ci"][0] > 0 for a in report["annotators"][:2])


def test_an_annotator_far_faster_than_the_others_gets_the_warning():
    report = agreement_compute(crowd(seed=3, noise=(0.6, 0.8, 1.0, 0.7), seconds=[40, 35, 30, 6]), bootstrap=0)
    fast = [a["too_fast"] for a in report["annotators"]]
    assert fast == [False, False, False, True]
    quick = report["annotators"][3]
    assert quick["median_seconds"] < FAST_FACTOR * quick["others_median_seconds"]
    assert "too fast when" in report["fast_rule"]
