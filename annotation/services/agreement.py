"""Agreement between annotators' rankings, annotator reliability and position bias.

Everything is computed with numpy over a few flat arrays (one row per submitted ranking), so a
project of 100k tasks takes about a second; see bench/agreement.py. The array form is `RankData`;
`agreement_compute` turns it into the report, `project_agreement_compute` loads it from the
database first.

Definitions (docs/agreement.md has the long form):
- ranks: 1 = best; tied responses share the mean of the ranks they span ([[a], [b, c]] gives
  a=1, b=c=2.5). The consensus of several rankings is the mean rank, which orders responses
  exactly as Borda with ties (consensus.borda_scores: score = K - rank).
- Krippendorff's alpha (ordinal) over units = (task, response), values = the ranks annotators gave.
  95% CI: percentile bootstrap resampling tasks (the coincidence matrix is a sum over tasks).
- Kendall's W per task with the tie correction, over tasks whose rankings all cover the same
  responses and that have at least two rankings.
- tau-b between two rankings, over the response pairs both ranked.
- pairwise agreement: over every pair of annotators on a task and every response pair both ranked,
  the share ordered the same way (a tie agrees only with a tie). The same definition on one task
  is `task_agreement` (what exports call a task's `agreement`).
- per annotator: `agreement` = mean tau-b between their ranking and the leave-one-out consensus of
  the others on the same task; `gold_score` = mean tau-b against the gold ranking; `skill` and
  `weight`, what their rankings count in a reliability-weighted consensus (services/reliability.py).
- flag rule (FLAG_RULE): see `_flag`. A rule relative to the crowd alone cannot work with few
  annotators (with three, one random ranker widens the spread so much that nothing is "far below
  the median"), so an annotator is also flagged when they agree with no other annotator better
  than chance (the CI of their pairwise tau-b with each partner reaches 0; the leave-one-out
  consensus would not do, as it mixes the random ranker into the honest ones' consensus), or
  when their gold score is not shown to be above chance; this works from three annotators.
- too fast (FAST_RULE): far below the others' median seconds per ranking, a warning, not a flag.
- position bias: the share of rankings in which the response shown at each position was ranked
  first (shared among a tied top tier), against 1/K, with a chi-square goodness-of-fit test.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Membership, Project, Ranking, RankingTask
from annotation.services.consensus import tiers_to_ranks
from annotation.services.ranking_filter import RankingFilter, ranking_filter_queryset
from annotation.services.ranking_stats import DISPLAY_DTYPE, RANK_DTYPE
from annotation.services.reliability import WEIGHT_RULE, consensus_weights, skills_from_signs
from annotation.sql import agreement as sql
from annotation.sql import postgres_statements

BOOTSTRAP_SAMPLES = 1000
FLAG_MIN_TASKS = 5  # the outlier rule needs this many tasks shared with others
FLAG_MIN_GAP = 0.2
FLAG_MAD_FACTOR = 3.0
FLAG_CHANCE_MIN_TASKS = 10  # the chance rule (and the gold rule, counted in gold tasks) needs this many
FLAG_CONFIDENCE = 0.95
FAST_FACTOR = 0.4  # "far faster": a median time below this share of the other annotators' median
FAST_MIN_RANKINGS = 5
FLAG_RULE = (
    f"flagged when the annotator agrees with nobody better than chance: with every annotator they share at least "
    f"{FLAG_CHANCE_MIN_TASKS} tasks with (and there is one), the {FLAG_CONFIDENCE:.0%} CI of their mean pairwise tau-b reaches 0, "
    f"or over at least {FLAG_CHANCE_MIN_TASKS} gold tasks the {FLAG_CONFIDENCE:.0%} CI of their gold score reaches 0; "
    f"or when, over at least {FLAG_MIN_TASKS} shared tasks, their agreement is below the median of all such annotators minus "
    f"max({FLAG_MIN_GAP}, {FLAG_MAD_FACTOR} x 1.4826 x MAD)"
)
FAST_RULE = (
    f"too fast when their median time per ranking (over at least {FAST_MIN_RANKINGS} timed rankings) is below "
    f"{FAST_FACTOR:.0%} of the median of the other annotators' medians"
)
W_BINS = np.linspace(0.0, 1.0, 11)
SIGNIFICANCE = 0.05


@dataclass
class RankData:
    """Rankings as arrays, one row per ranking; columns are the task's response slots.

    Args:
        ranks: (n, K) float, 1 = best, tied ranks averaged, NaN where the slot was not ranked
            (or the task has fewer than K responses).
        task: (n,) int task index, 0..n_tasks-1.
        annotator: (n,) int annotator index, 0..n_annotators-1.
        display: (n, K) int, the 0-based position the slot was shown at, -1 when unknown.
        seconds: (n,) float, time spent, NaN when unknown.
        gold: (n_tasks, K) float gold ranks, NaN for tasks without a gold ranking.
    """

    ranks: np.ndarray
    task: np.ndarray
    annotator: np.ndarray
    n_tasks: int
    n_annotators: int
    display: np.ndarray | None = None
    seconds: np.ndarray | None = None
    gold: np.ndarray | None = None


# ---------------------------------------------------------------------------------------------
# Pure statistics on arrays
# ---------------------------------------------------------------------------------------------


def _pair_columns(k: int) -> tuple[np.ndarray, np.ndarray]:
    p, q = np.triu_indices(k, 1)
    return p, q


def _signs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row and each slot pair p<q: sign(v_p - v_q) (0 for ties) and whether both are defined."""
    p, q = _pair_columns(values.shape[1])
    a, b = values[:, p], values[:, q]
    defined = ~(np.isnan(a) | np.isnan(b))
    sign = np.where(defined, np.sign(np.nan_to_num(a - b)), 0.0)
    return sign, defined


def _tau_b(sa: np.ndarray, da: np.ndarray, sb: np.ndarray, db: np.ndarray) -> np.ndarray:
    """Row-wise Kendall tau-b from pair signs, over the pairs defined in both rows (NaN if undefined)."""
    both = da & db
    num = (sa * sb * both).sum(1)
    den = np.sqrt((sa * sa * both).sum(1) * (sb * sb * both).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall tau-b of two rank vectors (NaN entries ignored pairwise)."""
    sa, da = _signs(np.asarray([x], dtype=float))
    sb, db = _signs(np.asarray([y], dtype=float))
    return float(_tau_b(sa, da, sb, db)[0])


def _ordinal_delta2(n_c: np.ndarray) -> np.ndarray:
    """Krippendorff's ordinal metric delta^2_ck for value marginals n_c (..., V) -> (..., V, V)."""
    cum = np.cumsum(n_c, axis=-1)
    # sum_{g=c}^{k} n_g for c <= k is cum[k] - cum[c] + n_c.
    span = cum[..., None, :] - cum[..., :, None] + n_c[..., :, None]
    delta = span - (n_c[..., :, None] + n_c[..., None, :]) / 2.0
    upper = np.triu(np.ones(n_c.shape[-1], dtype=bool))
    delta = np.where(upper, delta, np.swapaxes(delta, -1, -2))
    return delta * delta


def _alpha_from_coincidences(o: np.ndarray) -> np.ndarray:
    """Ordinal alpha from coincidence matrices o (..., V, V); NaN when there is no variation."""
    n_c = o.sum(-1)
    n = n_c.sum(-1)
    d2 = _ordinal_delta2(n_c)
    observed = (o * d2).sum((-1, -2))
    expected = (n_c[..., :, None] * n_c[..., None, :] * d2).sum((-1, -2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected > 0, 1.0 - (n - 1) * observed / np.where(expected > 0, expected, 1.0), np.nan)


def task_coincidences(ranks: np.ndarray, task: np.ndarray, n_tasks: int) -> np.ndarray:
    """Per-task coincidence matrices (n_tasks, V, V) of the rank values (units = task x slot)."""
    k = ranks.shape[1]
    finite = ~np.isnan(ranks)
    # Ranks are multiples of 1/2 (tied ranks are means of consecutive integers): code them as ints.
    doubled = np.rint(np.where(finite, ranks, 0) * 2).astype(np.int64)
    values = np.unique(doubled[finite])
    v = len(values)
    if v == 0:
        return np.zeros((n_tasks, 0, 0))
    code = np.searchsorted(values, doubled)
    unit = task[:, None] * k + np.arange(k)[None, :]
    counts = np.bincount((unit * v + code)[finite], minlength=n_tasks * k * v).reshape(n_tasks, k, v).astype(float)
    m = counts.sum(-1, keepdims=True)
    weight = np.where(m > 1, 1.0 / np.maximum(m - 1, 1), 0.0)
    weighted = counts * weight
    o = np.einsum("tkv,tkw->tvw", weighted, counts)
    o -= np.einsum("tkv->tv", weighted)[:, :, None] * np.eye(v)[None]
    return o


def krippendorff_alpha_ordinal(ranks: np.ndarray, task: np.ndarray, n_tasks: int) -> float:
    """Ordinal alpha of the ranks; units are (task, slot). NaN when undefined."""
    o = task_coincidences(ranks, task, n_tasks)
    if o.shape[1] == 0:
        return math.nan
    return float(_alpha_from_coincidences(o.sum(0)))


def bootstrap_alpha_ci(
    o_tasks: np.ndarray, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0, level: float = 0.95, compress: bool = True
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of alpha, resampling tasks with replacement.

    `compress=False` forces the plain resampling of task indices (the tests compare both ways).
    """
    used = o_tasks.reshape(len(o_tasks), -1)
    used = used[used.sum(1) > 0]
    t = len(used)
    if t < 2 or samples < 1:
        return None
    v = o_tasks.shape[1]
    rng = np.random.default_rng(seed)
    tail = (1 - level) / 2 * 100
    # Many tasks share the same coincidence matrix (few annotators, few rank values). Resampling
    # t tasks with replacement is then exactly a multinomial draw over the distinct matrices,
    # weighted by how many tasks have each: far fewer numbers to draw than t per resample.
    patterns, counts = np.unique(used, axis=0, return_counts=True)
    if compress and len(patterns) * 4 <= t:
        weights = rng.multinomial(t, counts / t, size=samples).astype(np.float64)
        alpha = _alpha_from_coincidences((weights @ patterns).reshape(samples, v, v))
        alpha = alpha[~np.isnan(alpha)]
        if not len(alpha):
            return None
        low, high = np.percentile(alpha, [tail, 100 - tail])
        return float(low), float(high)
    # Otherwise draw task indices, chunked so the (chunk, tasks) weight matrix stays around 16 MB.
    chunk = max(1, min(samples, 2_000_000 // t))
    alphas = []
    for start in range(0, samples, chunk):
        c = min(chunk, samples - start)
        draws = rng.integers(0, t, size=(c, t))
        weights = np.bincount((draws + (np.arange(c) * t)[:, None]).ravel(), minlength=c * t).reshape(c, t)
        o_b = (weights.astype(np.float64) @ used).reshape(c, v, v)
        alphas.append(_alpha_from_coincidences(o_b))
    alpha = np.concatenate(alphas)
    alpha = alpha[~np.isnan(alpha)]
    if not len(alpha):
        return None
    low, high = np.percentile(alpha, [tail, 100 - tail])
    return float(low), float(high)


def kendall_w_per_task(ranks: np.ndarray, task: np.ndarray, n_tasks: int) -> np.ndarray:
    """Kendall's W of each task with the tie correction; NaN where undefined.

    W = 12 S / (m^2 (n^3 - n) - m sum_j T_j), T_j = sum over j's tie groups of t^3 - t. Defined for
    tasks with m >= 2 rankings that all rank the same n >= 2 responses.
    """
    k = ranks.shape[1]
    finite = ~np.isnan(ranks)
    m = np.bincount(task, minlength=n_tasks).astype(float)
    slot_count = np.zeros((n_tasks, k))
    np.add.at(slot_count, task, finite.astype(float))
    per_rank_n = finite.sum(1)
    # A task is usable when every ranking covers every slot any ranking of the task covers.
    covered = slot_count > 0
    n_items = covered.sum(1)
    complete = np.ones(n_tasks, dtype=bool)
    incomplete_rows = per_rank_n != n_items[task]
    complete[task[incomplete_rows]] = False
    rank_sum = np.zeros((n_tasks, k))
    np.add.at(rank_sum, task, np.nan_to_num(ranks))
    mean_sum = m * (n_items + 1) / 2.0
    s = (np.where(covered, rank_sum - mean_sum[:, None], 0.0) ** 2).sum(1)
    # Tie term of each ranking: sum over groups (t^3 - t) = sum over slots (t_slot^2 - 1).
    same = (ranks[:, :, None] == ranks[:, None, :]) & finite[:, :, None] & finite[:, None, :]
    tie_term = (same.sum(2) ** 2 - 1).clip(min=0).sum(1).astype(float)
    tie_sum = np.bincount(task, weights=tie_term, minlength=n_tasks)
    denominator = m * m * (n_items**3 - n_items) - m * tie_sum
    ok = complete & (m >= 2) & (n_items >= 2) & (denominator > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, 12.0 * s / np.where(ok, denominator, 1.0), np.nan)


def _pairs_within_tasks(task_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j), i < j, of rows with the same task, given rows sorted by task."""
    n = len(task_sorted)
    if n < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    group_size = np.bincount(task_sorted)
    max_m = int(group_size.max())
    firsts, seconds = [], []
    for d in range(1, max_m):
        i = np.arange(n - d)
        keep = task_sorted[i] == task_sorted[i + d]
        firsts.append(i[keep])
        seconds.append(i[keep] + d)
    if not firsts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(firsts), np.concatenate(seconds)


def _group_mean(values: np.ndarray, groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    ok = ~np.isnan(values)
    count = np.bincount(groups[ok], minlength=n_groups)
    total = np.bincount(groups[ok], weights=values[ok], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan), count


def _group_median(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    ok = ~np.isnan(values)
    values, groups = values[ok], groups[ok]
    out = np.full(n_groups, np.nan)
    if not len(values):
        return out
    order = np.lexsort((values, groups))
    values, groups = values[order], groups[order]
    starts = np.searchsorted(groups, np.arange(n_groups), side="left")
    ends = np.searchsorted(groups, np.arange(n_groups), side="right")
    has = ends > starts
    lo = values[np.where(has, (starts + ends - 1) // 2, 0)]
    hi = values[np.where(has, (starts + ends) // 2, 0)]
    out[has] = ((lo + hi) / 2)[has]
    return out


def _group_ci(values: np.ndarray, groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the FLAG_CONFIDENCE t-interval of the mean of its values (NaN with fewer than two values)."""
    from scipy import stats  # here, not at the top: see position_bias

    ok = ~np.isnan(values)
    count = np.bincount(groups[ok], minlength=n_groups).astype(float)
    total = np.bincount(groups[ok], weights=values[ok], minlength=n_groups)
    squares = np.bincount(groups[ok], weights=values[ok] ** 2, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        variance = np.maximum(0.0, (squares - count * mean**2) / (count - 1))
        half = stats.t.ppf(0.5 + FLAG_CONFIDENCE / 2, np.maximum(count - 1, 1)) * np.sqrt(variance / count)
    low = np.where(count >= 2, mean - half, np.nan)
    high = np.where(count >= 2, mean + half, np.nan)
    return low, high


def _partners(pair_tau: np.ndarray, a: np.ndarray, b: np.ndarray, n_annotators: int) -> list[dict[str, Any] | None]:
    """Per annotator, their best partner: the highest lower CI bound of the mean pairwise tau-b over
    the partners they share at least FLAG_CHANCE_MIN_TASKS tasks with (None when there is none)."""
    ok = ~np.isnan(pair_tau)
    lo, hi = np.minimum(a[ok], b[ok]), np.maximum(a[ok], b[ok])
    keys, groups = np.unique(lo * n_annotators + hi, return_inverse=True)
    values = pair_tau[ok]
    count = np.bincount(groups, minlength=len(keys))
    mean, _ = _group_mean(values, groups, len(keys))
    low, high = _group_ci(values, groups, len(keys))
    best: list[dict[str, Any] | None] = [None] * n_annotators
    for key, c, m, lo_ci, hi_ci in zip(keys, count, mean, low, high, strict=True):
        if c < FLAG_CHANCE_MIN_TASKS or np.isnan(lo_ci):
            continue
        for me, other in ((int(key // n_annotators), int(key % n_annotators)), (int(key % n_annotators), int(key // n_annotators))):
            if best[me] is None or lo_ci > best[me]["ci"][0]:
                best[me] = {"partner": other, "tasks": int(c), "tau_b": float(m), "ci": [float(lo_ci), float(hi_ci)]}
    return best


def _flag(
    agreement: np.ndarray, tasks_with_others: np.ndarray, partners: list[dict[str, Any] | None], gold_low: np.ndarray,
    gold_tasks: np.ndarray,
) -> tuple[np.ndarray, list[list[str]], float | None, float | None]:
    """FLAG_RULE. Returns flags, the reasons of each, and the outlier rule's median and threshold."""
    n = len(agreement)
    reasons: list[list[str]] = [[] for _ in range(n)]
    chance = np.array([p is not None and p["ci"][0] <= 0 for p in partners], dtype=bool)
    gold = (gold_tasks >= FLAG_CHANCE_MIN_TASKS) & ~np.isnan(gold_low) & (gold_low <= 0)
    outlier = np.zeros(n, dtype=bool)
    median = threshold = None
    eligible = (tasks_with_others >= FLAG_MIN_TASKS) & ~np.isnan(agreement)
    if eligible.sum() >= 2:
        values = agreement[eligible]
        median = float(np.median(values))
        mad = float(np.median(np.abs(values - median))) * 1.4826
        threshold = median - max(FLAG_MIN_GAP, FLAG_MAD_FACTOR * mad)
        outlier[eligible] = agreement[eligible] < threshold
    for i in range(n):
        if chance[i]:
            reasons[i].append("agrees with nobody above chance")
        if gold[i]:
            reasons[i].append("gold score not above chance")
        if outlier[i]:
            reasons[i].append("far below the others")
    return chance | gold | outlier, reasons, median, threshold


def _too_fast(median_seconds: np.ndarray, timed: np.ndarray) -> tuple[np.ndarray, list[float | None]]:
    """FAST_RULE: each annotator against the median of the others' medians. Returns flags and those medians."""
    n = len(median_seconds)
    fast = np.zeros(n, dtype=bool)
    others_median: list[float | None] = [None] * n
    known = (timed >= FAST_MIN_RANKINGS) & ~np.isnan(median_seconds)
    for i in range(n):
        others = median_seconds[known & (np.arange(n) != i)]
        if len(others):
            others_median[i] = float(np.median(others))
            fast[i] = bool(known[i] and median_seconds[i] < FAST_FACTOR * others_median[i])
    return fast, others_median


def position_bias(ranks: np.ndarray, display: np.ndarray) -> dict[str, Any]:
    """How often the response at each display position was ranked first, against uniform (1/K)."""
    finite = ~np.isnan(ranks)
    known = (display >= 0) & finite
    rows = known.sum(1) == finite.sum(1)
    rows &= finite.sum(1) >= 2
    r, d, f = ranks[rows], display[rows], finite[rows]
    if not len(r):
        return {"rankings": 0, "positions": [], "chi2": None, "dof": None, "p_value": None, "significant": False}
    best = np.nanmin(r, axis=1)
    top = (r == best[:, None]) & f
    share = top / top.sum(1, keepdims=True)
    k_row = f.sum(1)
    positions = int(d[f].max()) + 1
    observed = np.bincount(d[f], weights=share[f], minlength=positions)
    shown = np.bincount(d[f], minlength=positions).astype(float)
    expected = np.bincount(d[f], weights=np.broadcast_to(1.0 / k_row[:, None], f.shape)[f], minlength=positions)
    chi2 = p_value = None
    dof = None
    use = expected > 0
    if use.sum() >= 2:
        from scipy import stats  # here, not at the top: scipy.stats costs 65 MB that exports (which import this module) never use

        result = stats.chisquare(observed[use], f_exp=expected[use] * observed[use].sum() / expected[use].sum())
        chi2, p_value, dof = float(result.statistic), float(result.pvalue), int(use.sum() - 1)
    return {
        "rankings": int(len(r)),
        "positions": [
            {
                "position": i + 1,
                "shown": int(shown[i]),
                "first": round(float(observed[i]), 3),
                "rate": float(observed[i] / shown[i]) if shown[i] else None,
                "expected": float(expected[i] / shown[i]) if shown[i] else None,
            }
            for i in range(positions)
        ],
        "chi2": chi2,
        "dof": dof,
        "p_value": p_value,
        "significant": bool(p_value is not None and p_value < SIGNIFICANCE),
    }


def _num(value: Any, digits: int = 4) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else round(value, digits)


def _ci(low: float, high: float) -> list[float | None] | None:
    return None if np.isnan(low) or np.isnan(high) else [_num(low), _num(high)]


def agreement_compute(
    data: RankData, *, bootstrap: int = BOOTSTRAP_SAMPLES, seed: int = 0, annotator_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Every statistic of the report from the arrays. Pure: no database access."""
    ranks = np.asarray(data.ranks, dtype=float)
    task = np.asarray(data.task, dtype=np.int64)
    annotator = np.asarray(data.annotator, dtype=np.int64)
    n, k = ranks.shape
    n_tasks, n_annotators = data.n_tasks, data.n_annotators
    order = np.argsort(task, kind="stable")
    ranks, task, annotator = ranks[order], task[order], annotator[order]
    display = None if data.display is None else np.asarray(data.display)[order]
    seconds = None if data.seconds is None else np.asarray(data.seconds, dtype=float)[order]
    per_task = np.bincount(task, minlength=n_tasks)

    # Krippendorff's alpha with its bootstrap interval.
    o_tasks = task_coincidences(ranks, task, n_tasks) if n else np.zeros((n_tasks, 0, 0))
    alpha = float(_alpha_from_coincidences(o_tasks.sum(0))) if o_tasks.shape[1] else math.nan
    alpha_ci = bootstrap_alpha_ci(o_tasks, samples=bootstrap, seed=seed) if not math.isnan(alpha) else None

    # Kendall's W per task and its distribution.
    w = kendall_w_per_task(ranks, task, n_tasks) if n else np.full(n_tasks, np.nan)
    w_ok = w[~np.isnan(w)]
    w_hist = np.histogram(np.clip(w_ok, 0, 1), bins=W_BINS)[0] if len(w_ok) else np.zeros(len(W_BINS) - 1, int)

    # Annotator pairs on the same task: tau-b and pairwise agreement.
    sign, defined = _signs(ranks)
    first, second = _pairs_within_tasks(task)
    pair_tau = _tau_b(sign[first], defined[first], sign[second], defined[second])
    both = defined[first] & defined[second]
    same = (sign[first] == sign[second]) & both
    compared = int(both.sum())
    ordered = sign != 0  # boolean, so gathering it per annotator pair is cheap
    strict = both & ordered[first] & ordered[second]
    skills = skills_from_signs(strict=strict, same=same, first_annotator=annotator[first], second_annotator=annotator[second],
                               n_annotators=n_annotators)
    del ordered, strict
    pairwise_agreement = float(same.sum() / compared) if compared else math.nan

    # Leave-one-out consensus: the mean rank the other annotators of the task gave each slot.
    finite = ~np.isnan(ranks)
    rank_sum = np.zeros((n_tasks, k))
    np.add.at(rank_sum, task, np.nan_to_num(ranks))
    rank_cnt = np.zeros((n_tasks, k))
    np.add.at(rank_cnt, task, finite.astype(float))
    others_cnt = rank_cnt[task] - finite
    with np.errstate(invalid="ignore", divide="ignore"):
        others_mean = np.where(others_cnt > 0, (rank_sum[task] - np.nan_to_num(ranks)) / np.maximum(others_cnt, 1), np.nan)
    others_sign, others_defined = _signs(others_mean)
    loo_tau = _tau_b(sign, defined, others_sign, others_defined)
    agreement, agreement_tasks = _group_mean(loo_tau, annotator, n_annotators)
    agreement_low, agreement_high = _group_ci(loo_tau, annotator, n_annotators)

    # Gold score: tau-b against the gold ranking of gold tasks.
    if data.gold is not None and n:
        gold_rows = np.asarray(data.gold, dtype=float)[task]
        gold_sign, gold_defined = _signs(gold_rows)
        gold_tau = _tau_b(sign, defined, gold_sign, gold_defined)
    else:
        gold_tau = np.full(n, np.nan)
    gold_score, gold_tasks = _group_mean(gold_tau, annotator, n_annotators)
    gold_low, gold_high = _group_ci(gold_tau, annotator, n_annotators)

    tasks_done = np.bincount(annotator, minlength=n_annotators)
    median_seconds = (
        _group_median(seconds, annotator, n_annotators) if seconds is not None else np.full(n_annotators, np.nan)
    )
    timed = np.bincount(annotator[~np.isnan(seconds)], minlength=n_annotators) if seconds is not None else np.zeros(n_annotators, int)
    partners = _partners(pair_tau, annotator[first], annotator[second], n_annotators)
    flags, reasons, flag_median, flag_threshold = _flag(agreement, agreement_tasks, partners, gold_low, gold_tasks)
    fast, others_seconds = _too_fast(median_seconds, timed)
    names = list(annotator_names) if annotator_names is not None else [str(i) for i in range(n_annotators)]
    annotators = [
        {
            "username": names[i],
            "tasks": int(tasks_done[i]),
            "agreement": _num(agreement[i]),
            "agreement_tasks": int(agreement_tasks[i]),
            "agreement_ci": _ci(agreement_low[i], agreement_high[i]),
            "gold_score": _num(gold_score[i]),
            "gold_tasks": int(gold_tasks[i]),
            "gold_ci": _ci(gold_low[i], gold_high[i]),
            "median_seconds": _num(median_seconds[i], 2),
            "others_median_seconds": _num(others_seconds[i], 2),
            "too_fast": bool(fast[i]),
            "flagged": bool(flags[i]),
            "flag_reasons": reasons[i],
            "skill": _num(skills.skill[i]),
            "weight": _num(skills.weight[i]),
            "skill_pairs": int(skills.pairs[i]),
            "best_partner": None if partners[i] is None else {
                "username": names[partners[i]["partner"]], "tasks": partners[i]["tasks"], "tau_b": _num(partners[i]["tau_b"]),
                "ci": [_num(partners[i]["ci"][0]), _num(partners[i]["ci"][1])],
            },
        }
        for i in range(n_annotators)
    ]
    bias = (
        position_bias(ranks, display)
        if display is not None and n
        else {"rankings": 0, "positions": [], "chi2": None, "dof": None, "p_value": None, "significant": False}
    )
    return {
        "rankings": int(n),
        "tasks": int((per_task > 0).sum()),
        "tasks_with_overlap": int((per_task > 1).sum()),
        "alpha": _num(alpha),
        "alpha_ci": [_num(alpha_ci[0]), _num(alpha_ci[1])] if alpha_ci else None,
        "bootstrap_samples": int(bootstrap),
        "kendall_w_mean": _num(w_ok.mean()) if len(w_ok) else None,
        "kendall_w_median": _num(np.median(w_ok)) if len(w_ok) else None,
        "kendall_w_tasks": int(len(w_ok)),
        "kendall_w_histogram": {"edges": [round(float(e), 2) for e in W_BINS], "counts": [int(c) for c in w_hist]},
        "tau_b_mean": _num(np.nanmean(pair_tau)) if np.any(~np.isnan(pair_tau)) else None,
        "annotator_pairs": int(len(first)),
        "pairwise_agreement": _num(pairwise_agreement),
        "pairwise_comparisons": compared,
        "position_bias": bias,
        "annotators": annotators,
        "flag_rule": FLAG_RULE,
        "fast_rule": FAST_RULE,
        "weight_rule": WEIGHT_RULE,
        "flag_median": _num(flag_median),
        "flag_threshold": _num(flag_threshold),
    }


# ---------------------------------------------------------------------------------------------
# Loading from the database
# ---------------------------------------------------------------------------------------------


# Which rankings count: the one filter shared with exports (annotation.services.ranking_filter).
AgreementFilters = RankingFilter


def rank_data_load(
    *, project: Project, filters: RankingFilter | None = None, packed: bool | None = None
) -> tuple[RankData, list[str], list[int]]:
    """The project's rankings as RankData, with annotator usernames and user ids by index.

    On PostgreSQL from the rank and display vectors written at submit time (one statement, no JSON:
    annotation.services.ranking_stats); elsewhere, or when some ranking predates the vectors, by
    decoding `tiers` and the display orders. `packed` forces one way (True, PostgreSQL only) or the
    other (False), for the benchmark and the tests that compare them.
    """
    filters = filters or RankingFilter()
    rankings = ranking_filter_queryset(Ranking.objects.filter(project=project), filters)
    if packed if packed is not None else postgres_statements():
        loaded = _rank_data_from_vectors(project=project, rankings=rankings)
        if loaded is not None:
            return loaded
    return _rank_data_from_json(project=project, rankings=rankings)


def _gold_rankings(*, project: Project, task_ids: list[int]) -> dict[int, Any]:
    """Task id -> gold ranking, of the ranked tasks (`task_ids`) that are gold.

    The project's gold tasks are few; they are read by project and kept if ranked, rather than
    sending every ranked task's id: 100k ids in an IN list cost ~1.2 s to build and convert on the
    client alone.
    """
    ranked = set(task_ids)
    rows = RankingTask.objects.filter(project=project, is_gold=True, gold_ranking__isnull=False).values_list("id", "gold_ranking")
    return {task_id: gold for task_id, gold in rows if task_id in ranked}


def _rank_data_from_vectors(*, project: Project, rankings: QuerySet) -> tuple[RankData, list[str], list[int]] | None:
    ids_sql, ids_params = rankings.values("id").query.sql_with_params()
    columns = sql.ranking_columns(ids_sql=ids_sql, ids_params=ids_params)
    if columns.without_vectors or not columns.count:
        return None  # rows from before the vectors (or none at all): the JSON path handles them
    n = columns.count
    task_ids = np.frombuffer(columns.task, dtype=">i8").astype(np.int64)
    user_ids_all = np.frombuffer(columns.annotator, dtype=">i8").astype(np.int64)
    seconds_arr = np.frombuffer(columns.seconds, dtype=">f8").astype(np.float64)
    lengths = np.frombuffer(columns.vector_bytes, dtype=">i4").astype(np.int64) // RANK_DTYPE.itemsize
    ranks_flat = np.frombuffer(columns.rank_vectors, dtype=RANK_DTYPE).astype(np.float64)
    display_flat = np.frombuffer(columns.display_vectors, dtype=DISPLAY_DTYPE).astype(np.int64)
    unique_tasks, task_arr = np.unique(task_ids, return_inverse=True)
    unique_users, user_arr = np.unique(user_ids_all, return_inverse=True)
    task_list = unique_tasks.tolist()

    # Gold ranks in the same columns: the task's responses in ascending id order.
    gold_by_task = _gold_rankings(project=project, task_ids=task_list)
    gold_slots: dict[int, list[int]] = {}
    if gold_by_task:
        through = RankingTask.responses.through
        for task_id, response_id in through.objects.filter(rankingtask_id__in=list(gold_by_task)).values_list(
                "rankingtask_id", "response_id"):
            gold_slots.setdefault(task_id, []).append(response_id)
    k = max(int(lengths.max()), max((len(v) for v in gold_slots.values()), default=0), 2)

    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    row = np.repeat(np.arange(n), lengths)
    col = np.arange(int(lengths.sum())) - np.repeat(offsets, lengths)
    ranks_arr = np.full((n, k), np.nan)
    ranks_arr[row, col] = ranks_flat
    display_arr = np.full((n, k), -1, dtype=np.int64)
    display_arr[row, col] = display_flat
    gold_arr = None
    if gold_by_task:
        task_index = {t: i for i, t in enumerate(task_list)}
        gold_arr = np.full((len(task_list), k), np.nan)
        for task_id, gold in gold_by_task.items():
            ranks = tiers_to_ranks(gold or [])
            for column, response_id in enumerate(sorted(gold_slots.get(task_id, []))):
                gold_arr[task_index[task_id], column] = ranks.get(response_id, np.nan)
    user_ids = unique_users.tolist()
    usernames = dict(get_user_model().objects.filter(id__in=user_ids).values_list("id", "username"))
    data = RankData(
        ranks=ranks_arr, task=task_arr.astype(np.int64), annotator=user_arr.astype(np.int64), n_tasks=len(task_list),
        n_annotators=len(user_ids), display=display_arr, seconds=seconds_arr, gold=gold_arr,
    )
    return data, [usernames[u] for u in user_ids], user_ids


def _rank_data_from_json(*, project: Project, rankings: QuerySet) -> tuple[RankData, list[str], list[int]]:
    # JSON columns come back as text and are decoded in one json.loads call: decoding them row by
    # row through the ORM costs more than all the statistics together.
    raw = list(
        rankings
        .order_by("task_id", "id")
        .annotate(tiers_text=Cast("tiers", TextField()), display_text=Cast("assignment__display_order", TextField()))
        .values_list("task_id", "annotator_id", "tiers_text", "duration_seconds", "display_text")
    )
    decoded = json.loads("[" + ",".join(f"{r[2] or 'null'},{r[4] or 'null'}" for r in raw) + "]") if raw else []
    rows = [(r[0], r[1], decoded[2 * i], r[3], decoded[2 * i + 1]) for i, r in enumerate(raw)]
    task_ids = sorted({row[0] for row in rows})
    task_index = {t: i for i, t in enumerate(task_ids)}
    user_ids = sorted({row[1] for row in rows})
    user_index = {u: i for i, u in enumerate(user_ids)}
    gold_by_task = _gold_rankings(project=project, task_ids=task_ids)

    # Slots of a task: every response id any ranking (or the gold ranking) of it mentions, sorted.
    slots: dict[int, dict[int, int]] = {}
    parsed = []
    for task_id, _user_id, tiers, _seconds, _display in rows:
        ranks = tiers_to_ranks(tiers or [])
        parsed.append(ranks)
        slot = slots.setdefault(task_id, {})
        for response_id in ranks:
            slot.setdefault(response_id, 0)
    for task_id, gold in gold_by_task.items():
        slot = slots.setdefault(task_id, {})
        for response_id in tiers_to_ranks(gold or []):
            slot.setdefault(response_id, 0)
    for slot in slots.values():
        for i, response_id in enumerate(sorted(slot, key=str)):
            slot[response_id] = i
    k = max((len(s) for s in slots.values()), default=2)
    n = len(rows)
    ranks_arr = np.full((n, k), np.nan)
    display_arr = np.full((n, k), -1, dtype=np.int64)
    seconds_arr = np.full(n, np.nan)
    task_arr = np.empty(n, dtype=np.int64)
    user_arr = np.empty(n, dtype=np.int64)
    for row_index, ((task_id, user_id, _tiers, seconds, display), ranks) in enumerate(zip(rows, parsed, strict=True)):
        slot = slots[task_id]
        task_arr[row_index] = task_index[task_id]
        user_arr[row_index] = user_index[user_id]
        if seconds is not None:
            seconds_arr[row_index] = seconds
        for response_id, rank in ranks.items():
            ranks_arr[row_index, slot[response_id]] = rank
        for position, response_id in enumerate(display or []):
            column = slot.get(response_id)
            if column is not None:
                display_arr[row_index, column] = position
    gold_arr = None
    if gold_by_task:
        gold_arr = np.full((len(task_ids), k), np.nan)
        for task_id, gold in gold_by_task.items():
            for response_id, rank in tiers_to_ranks(gold or []).items():
                gold_arr[task_index[task_id], slots[task_id][response_id]] = rank
    usernames = dict(get_user_model().objects.filter(id__in=user_ids).values_list("id", "username"))
    data = RankData(
        ranks=ranks_arr, task=task_arr, annotator=user_arr, n_tasks=len(task_ids), n_annotators=len(user_ids),
        display=display_arr, seconds=seconds_arr, gold=gold_arr,
    )
    return data, [usernames[u] for u in user_ids], user_ids


def agreement_mark_former_members(*, report: dict[str, Any], project: Project) -> dict[str, Any]:
    """Set each annotator row's `former_member` (no longer a member of the project), in place.

    Derived from the membership's absence when the report is read, so a cached report computed
    before a removal is marked too."""
    members = set(Membership.objects.filter(project=project).values_list("user_id", flat=True))
    for row in report.get("annotators", []):
        row["former_member"] = row.get("user_id") not in members
    return report


def agreement_empty_report() -> dict[str, Any]:
    """The report of no rankings (what a reader shows while the first refresh runs): no statistics, nothing flagged."""
    empty = RankData(ranks=np.empty((0, 2)), task=np.empty(0, dtype=np.int64), annotator=np.empty(0, dtype=np.int64),
                     n_tasks=0, n_annotators=0)
    return agreement_compute(empty, bootstrap=0, annotator_names=[])


def project_agreement_compute(
    *, project: Project, filters: RankingFilter | None = None, bootstrap: int = BOOTSTRAP_SAMPLES, seed: int = 0,
    packed: bool | None = None,
) -> dict[str, Any]:
    """The full agreement report of a project (JSON-ready), optionally filtered (`filters` resolved for the project:
    annotation.services.ranking_filter.ranking_filter_build). `packed`: as rank_data_load's."""
    filters = filters or RankingFilter()
    data, usernames, user_ids = rank_data_load(project=project, filters=filters, packed=packed)
    report = agreement_compute(data, bootstrap=bootstrap, seed=seed, annotator_names=usernames)

    # Skips: share of the annotator's finished assignments (submitted or skipped) that were skipped.
    assignments = ranking_filter_queryset(
        Assignment.objects.filter(project=project, status__in=[AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED]),
        filters, time_field="finished_at",
    )
    finished = {
        row["annotator_id"]: row
        for row in assignments.values("annotator_id").annotate(
            skipped=Count("id", filter=Q(status=AssignmentStatus.SKIPPED)), total=Count("id")
        )
    }
    by_id = dict(zip(user_ids, report["annotators"], strict=True))
    missing = [uid for uid in finished if uid not in by_id]
    names = dict(get_user_model().objects.filter(id__in=missing).values_list("id", "username"))
    for uid in missing:  # annotators who only skipped
        by_id[uid] = {
            "username": names[uid], "tasks": 0, "agreement": None, "agreement_tasks": 0, "agreement_ci": None, "gold_score": None,
            "gold_tasks": 0, "gold_ci": None, "median_seconds": None, "others_median_seconds": None, "too_fast": False,
            "flagged": False, "flag_reasons": [], "skill": None, "weight": None, "skill_pairs": 0,
        }
    for uid, row in by_id.items():
        counts = finished.get(uid)
        row["user_id"] = uid
        row["skips"] = counts["skipped"] if counts else 0
        row["skip_share"] = _num(counts["skipped"] / counts["total"]) if counts and counts["total"] else 0.0
    report["annotators"] = sorted(by_id.values(), key=lambda r: r["username"])
    agreement_mark_former_members(report=report, project=project)
    report["project"] = project.slug
    report["filters"] = filters.as_json()
    from annotation.services.judge_agreement import judge_agreement_compute

    # Unfiltered, this is the report the weights will be read from: its judge section uses them already.
    weights = consensus_weights(project=project, annotators=report["annotators"]) if filters.is_empty else "stored"
    report["judge"] = judge_agreement_compute(project=project, filters=filters, weights=weights)
    report["computed_at"] = timezone.now().isoformat()
    return report
