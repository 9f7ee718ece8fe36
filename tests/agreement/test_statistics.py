"""The agreement statistics on plain arrays: hand-computed cases and cross-checks with reference libraries."""
from __future__ import annotations

import itertools

import krippendorff
import numpy as np
import pytest
from scipy import stats

from annotation.services.agreement import (
    RankData,
    agreement_compute,
    bootstrap_alpha_ci,
    kendall_w_per_task,
    krippendorff_alpha_ordinal,
    position_bias,
    task_coincidences,
    tau_b,
)
from annotation.services.consensus import borda_scores, tiers_to_ranks

nan = np.nan


def data(rows, annotators=None, display=None, gold=None):
    """rows: one rank vector per ranking, all of one task unless given as (task, ranks)."""
    if rows and isinstance(rows[0], tuple):
        task = np.array([t for t, _ in rows])
        ranks = np.array([r for _, r in rows], dtype=float)
    else:
        task = np.zeros(len(rows), dtype=int)
        ranks = np.array(rows, dtype=float)
    annotator = np.array(annotators if annotators is not None else range(len(rows)))
    return RankData(
        ranks=ranks, task=task, annotator=annotator, n_tasks=int(task.max()) + 1, n_annotators=int(annotator.max()) + 1,
        display=None if display is None else np.array(display), gold=None if gold is None else np.array(gold, dtype=float),
    )


def reference_alpha(d: RankData) -> float:
    """The krippendorff package (GPL, test-only) on the same data: coders x units, units = (task, slot)."""
    k = d.ranks.shape[1]
    reliability = np.full((d.n_annotators, d.n_tasks * k), np.nan)
    for row, (t, a) in enumerate(zip(d.task, d.annotator, strict=True)):
        reliability[a, t * k : (t + 1) * k] = d.ranks[row]
    return krippendorff.alpha(reliability_data=reliability, level_of_measurement="ordinal")


def test_identical_rankings_have_alpha_one_and_full_agreement():
    report = agreement_compute(data([[1, 2, 3, 4]] * 3 + [[2, 1, 4, 3]] * 0), bootstrap=0)
    assert report["alpha"] == 1.0
    assert report["kendall_w_mean"] == 1.0
    assert report["tau_b_mean"] == 1.0
    assert report["pairwise_agreement"] == 1.0
    assert report["pairwise_comparisons"] == 3 * 6  # 3 annotator pairs x 6 response pairs


def test_identical_rankings_over_several_tasks_have_alpha_one():
    rows = [(t, [1, 2, 3, 4][::s]) for t, s in [(0, 1), (1, -1), (2, 1)] for _ in range(3)]
    assert krippendorff_alpha_ordinal(*_arrays(rows)) == pytest.approx(1.0)


def _arrays(rows):
    d = data(rows)
    return d.ranks, d.task, d.n_tasks


def test_reversed_annotators_give_negative_alpha_and_zero_w():
    d = data([[1, 2, 3, 4], [4, 3, 2, 1]])
    report = agreement_compute(d, bootstrap=0)
    assert report["alpha"] < 0
    assert report["alpha"] == pytest.approx(reference_alpha(d), abs=1e-9)
    assert report["tau_b_mean"] == -1.0
    assert report["pairwise_agreement"] == 0.0
    assert report["kendall_w_mean"] == 0.0


def test_hand_computed_two_annotators_three_responses():
    # A: 1 2 3, B: 1 3 2. Coincidences o11=2, o23=o32=2; n_c = 2,2,2; ordinal delta^2: 12->4, 23->4, 13->16.
    # alpha = 1 - (n-1) * sum(o delta^2) / sum(n_c n_k delta^2) = 1 - 5 * 16 / 192 = 7/12.
    d = data([[1, 2, 3], [1, 3, 2]])
    report = agreement_compute(d, bootstrap=0)
    assert report["alpha"] == pytest.approx(7 / 12, abs=1e-4)
    assert reference_alpha(d) == pytest.approx(7 / 12)
    assert report["tau_b_mean"] == pytest.approx(1 / 3, abs=1e-4)  # 2 concordant, 1 discordant pair
    assert report["pairwise_agreement"] == pytest.approx(2 / 3, abs=1e-4)
    # W: rank sums 2, 5, 5 around 4 -> S = 6; W = 12 S / (m^2 (n^3 - n)) = 72 / 96.
    assert report["kendall_w_mean"] == pytest.approx(0.75)


def test_missing_annotation_is_left_out_of_its_unit_only():
    # C ranked only the first response: unit 1 holds three 1s -> o11 = 3, n_c = 3,2,2, n = 7;
    # delta^2: 12 -> 2.5^2, 23 -> 2^2, 13 -> 4.5^2; alpha = 1 - 6 * 16 / 350.
    d = data([[1, 2, 3], [1, 3, 2], [1, nan, nan]])
    assert krippendorff_alpha_ordinal(d.ranks, d.task, 1) == pytest.approx(1 - 96 / 350)
    assert reference_alpha(d) == pytest.approx(1 - 96 / 350)
    report = agreement_compute(d, bootstrap=0)
    assert report["kendall_w_tasks"] == 0  # W needs complete rankings: this task is left out
    # C shares only one response with the others, so no pair of C's is comparable.
    assert report["pairwise_comparisons"] == 3
    assert report["annotators"][2]["agreement"] is None


def test_tied_ranks_hand_computed_w_and_cross_checked_alpha_and_tau():
    # A: x > y = z (ranks 1, 2.5, 2.5); B: 1 2 3. R = 2, 4.5, 5.5 around 4 -> S = 6.5;
    # ties: T_A = 2^3 - 2 = 6; W = 12 * 6.5 / (4 * 24 - 2 * 6) = 78 / 84.
    a_ranks = tiers_to_ranks([["x"], ["y", "z"]])
    d = data([[a_ranks["x"], a_ranks["y"], a_ranks["z"]], [1, 2, 3]])
    assert d.ranks[0].tolist() == [1.0, 2.5, 2.5]
    report = agreement_compute(d, bootstrap=0)
    assert report["kendall_w_mean"] == pytest.approx(78 / 84, abs=1e-4)
    assert report["alpha"] == pytest.approx(reference_alpha(d), abs=1e-4)
    assert report["tau_b_mean"] == pytest.approx(stats.kendalltau([1, 2.5, 2.5], [1, 2, 3]).statistic, abs=1e-4)
    # The tied pair y = z vs y < z disagrees; x above both agrees: 2 of 3.
    assert report["pairwise_agreement"] == pytest.approx(2 / 3, abs=1e-4)


def _random_rankings(rng, n_tasks, k, annotators, per_task, tie_rate, missing_rate):
    rows, who = [], []
    for t in range(n_tasks):
        for a in rng.choice(annotators, per_task, replace=False):
            scores = np.round(rng.normal(size=k) * (1 if rng.random() > tie_rate else 0.3))
            ranks = stats.rankdata(-scores)
            ranks[rng.random(k) < missing_rate] = np.nan
            rows.append((t, ranks))
            who.append(a)
    return data(rows, annotators=who)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_alpha_matches_the_krippendorff_package_with_ties_and_missing_values(seed):
    rng = np.random.default_rng(seed)
    d = _random_rankings(rng, n_tasks=40, k=int(rng.integers(3, 6)), annotators=6, per_task=3, tie_rate=0.4, missing_rate=0.1)
    ours = krippendorff_alpha_ordinal(d.ranks, d.task, d.n_tasks)
    assert ours == pytest.approx(reference_alpha(d), abs=1e-9)


def _naive_w(ranks: np.ndarray) -> float:
    m, n = ranks.shape
    sums = ranks.sum(0)
    s = ((sums - sums.mean()) ** 2).sum()
    ties = sum(((c**3) - c) for row in ranks for c in np.unique(row, return_counts=True)[1])
    return 12 * s / (m * m * (n**3 - n) - m * ties)


@pytest.mark.parametrize("seed", [0, 1])
def test_w_and_tau_b_match_naive_implementations_and_scipy(seed):
    rng = np.random.default_rng(seed)
    d = _random_rankings(rng, n_tasks=30, k=5, annotators=5, per_task=4, tie_rate=0.5, missing_rate=0.0)
    w = kendall_w_per_task(d.ranks, d.task, d.n_tasks)
    for t in range(d.n_tasks):
        with np.errstate(invalid="ignore"):
            assert w[t] == pytest.approx(_naive_w(d.ranks[d.task == t]), nan_ok=True)
    report = agreement_compute(d, bootstrap=0)
    taus = [
        stats.kendalltau(x, y).statistic
        for t in range(d.n_tasks)
        for x, y in itertools.combinations(d.ranks[d.task == t], 2)
    ]
    assert report["tau_b_mean"] == pytest.approx(np.nanmean(taus), abs=1e-4)
    assert report["annotator_pairs"] == d.n_tasks * 6


def test_mean_rank_consensus_orders_like_borda_with_ties():
    rankings = [[["a"], ["b", "c"], ["d"]], [["b"], ["a"], ["d"], ["c"]], [["a", "b"], ["c"], ["d"]]]
    borda = borda_scores(rankings)
    mean_rank = {item: np.mean([tiers_to_ranks(r)[item] for r in rankings]) for item in "abcd"}
    for item in "abcd":
        assert borda[item] == pytest.approx(len(rankings) * 4 - len(rankings) * mean_rank[item])


def test_bootstrap_interval_contains_alpha_narrows_with_more_tasks_and_is_reproducible():
    def crowd(n_tasks, seed=0):
        rng = np.random.default_rng(seed)
        rows = []
        for t in range(n_tasks):
            truth = rng.normal(size=4)
            for _ in range(3):
                rows.append((t, stats.rankdata(-(truth + rng.normal(size=4)))))
        return data(rows, annotators=[i % 3 for i in range(len(rows))])

    small, large = crowd(30), crowd(600)
    for d in (small, large):
        report = agreement_compute(d, bootstrap=400)
        low, high = report["alpha_ci"]
        assert low < report["alpha"] < high
    width = [np.diff(agreement_compute(d, bootstrap=400)["alpha_ci"])[0] for d in (small, large)]
    assert width[1] < width[0] / 2
    o = task_coincidences(large.ranks, large.task, large.n_tasks)
    assert bootstrap_alpha_ci(o, samples=200, seed=5) == bootstrap_alpha_ci(o, samples=200, seed=5)


def test_bootstrap_over_distinct_task_matrices_matches_resampling_task_indices():
    rng = np.random.default_rng(7)
    rows = []
    for t in range(3000):
        truth = rng.normal(size=4)
        rows += [(t, stats.rankdata(-(truth + rng.normal(size=4)))) for _ in range(3)]
    d = data(rows, annotators=[i % 3 for i in range(len(rows))])
    o = task_coincidences(d.ranks, d.task, d.n_tasks)
    assert len(np.unique(o.reshape(len(o), -1), axis=0)) * 4 <= len(o)  # the compressed path is taken
    fast = bootstrap_alpha_ci(o, samples=2000, seed=1)
    plain = bootstrap_alpha_ci(o, samples=2000, seed=1, compress=False)
    assert fast != plain  # really two different code paths
    assert fast == pytest.approx(plain, abs=0.006)


def test_bootstrap_is_skipped_without_enough_tasks():
    o = task_coincidences(np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([0, 0]), 1)
    assert bootstrap_alpha_ci(o, samples=100) is None


def test_position_bias_detects_a_first_position_preference_and_not_a_uniform_one():
    rng = np.random.default_rng(0)
    n, k = 400, 4
    display = np.array([rng.permutation(k) for _ in range(n)])
    uniform_ranks = np.array([rng.permutation(k) + 1 for _ in range(n)], dtype=float)
    biased_ranks = uniform_ranks.copy()
    shown_first = display.argmin(1)  # the slot shown at position 0
    for row in range(n):
        if rng.random() < 0.6:  # 60% of the time the first shown response is ranked first
            old = biased_ranks[row, shown_first[row]]
            biased_ranks[row][biased_ranks[row] < old] += 1
            biased_ranks[row, shown_first[row]] = 1
    uniform, biased = position_bias(uniform_ranks, display), position_bias(biased_ranks, display)
    assert not uniform["significant"]
    assert biased["significant"] and biased["p_value"] < 1e-6
    assert biased["positions"][0]["rate"] > 0.6 and biased["positions"][0]["expected"] == 0.25
    assert sum(p["first"] for p in biased["positions"]) == pytest.approx(n)


def test_position_bias_shares_a_tied_top_tier():
    result = position_bias(np.array([[1.5, 1.5, 3.0]]), np.array([[0, 1, 2]]))
    assert [p["first"] for p in result["positions"]] == [0.5, 0.5, 0.0]


def test_gold_score_is_tau_b_against_the_gold_ranking():
    gold = [[1, 2, 3, 4]]
    d = data([[1, 2, 3, 4], [4, 3, 2, 1], [1, 2, 4, 3]], gold=gold)
    annotators = agreement_compute(d, bootstrap=0)["annotators"]
    assert [a["gold_score"] for a in annotators] == [1.0, -1.0, pytest.approx(2 / 3, abs=1e-4)]
    assert all(a["gold_tasks"] == 1 for a in annotators)


def test_tau_b_helper_agrees_with_scipy():
    x, y = [1, 2, 2, 4, 5], [2, 1, 3, 3, 5]
    assert tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)


def test_spammer_in_a_synthetic_crowd_is_the_only_one_flagged():
    rng = np.random.default_rng(3)
    noise = [0.5, 0.7, 0.9, 1.1, None]
    rows, who = [], []
    for t in range(200):
        truth = rng.normal(size=4)
        for a in rng.choice(5, 3, replace=False):
            scores = rng.normal(size=4) if noise[a] is None else truth + rng.normal(size=4) * noise[a]
            rows.append((t, stats.rankdata(-scores)))
            who.append(a)
    report = agreement_compute(data(rows, annotators=who), bootstrap=0)
    agreement = [a["agreement"] for a in report["annotators"]]
    assert int(np.argmin(agreement)) == 4
    assert [a["flagged"] for a in report["annotators"]] == [False] * 4 + [True]
    # The least noisy annotator agrees more with the others than the noisiest honest one.
    assert agreement[0] > agreement[3]


def test_empty_data_gives_an_empty_report():
    d = RankData(ranks=np.zeros((0, 2)), task=np.zeros(0, int), annotator=np.zeros(0, int), n_tasks=0, n_annotators=0)
    report = agreement_compute(d)
    assert report["alpha"] is None and report["alpha_ci"] is None and report["annotators"] == []
    assert report["kendall_w_mean"] is None and report["pairwise_agreement"] is None
