"""Annotator reliability from agreement alone, and the weights a reliability-weighted consensus gives rankings.

The model (docs/agreement.md "Reliability weights"): annotator i orders a response pair as the truth
does with probability p_i, independently of others; their skill is q_i = 2 p_i - 1 (0: a coin, 1:
always right). Two annotators then agree on a pair with probability p_i p_j + (1 - p_i)(1 - p_j) =
(1 + q_i q_j) / 2, so 2 * (their agreement) - 1 estimates q_i q_j: a rank-one matrix with an unseen
diagonal, whose factor q alternating least squares recovers from every pair of annotators who ranked
the same task, with no gold and no hidden truth (the spectral estimate crowdsourcing uses for binary
labels, Dalvi et al. 2013; no maintained library fits it to ranking pairs, hence by hand). In a
weighted majority the optimal weight of an independent voter right with probability p is
log(p / (1 - p)) (Nitzan and Paroush 1982), which is what each of their rankings counts in the
weighted Borda consensus (consensus.borda_scores with weights).

Ties do not enter: a response pair counts for two annotators when both ordered it strictly.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy and scipy load in the functions that need them: an export only reads the weights
    import numpy as np

    from annotation.models import Project

# Fewer strictly compared pairs than this (over all partners) and the estimate is noise: such an
# annotator's rankings count the median weight of the others.
MIN_SKILL_PAIRS = 30
MAX_SKILL = 0.98  # weight at most log(0.99 / 0.01) = 4.6: one near-perfect annotator does not outvote everyone
ALS_ROUNDS = 100
WEIGHTING = ("none", "reliability")  # Project.consensus_weighting
WEIGHT_RULE = (
    "reliability weights: skill q = 2p - 1 from how often each annotator agrees with the others on pairs both ordered "
    f"strictly ((1 + q_i q_j) / 2 expected), weight log(p / (1 - p)); under {MIN_SKILL_PAIRS} compared pairs, "
    "the median weight of the others"
)


@dataclass(frozen=True)
class Skills:
    skill: np.ndarray  # (n_annotators,) q = 2p - 1 in [0, MAX_SKILL], NaN below MIN_SKILL_PAIRS
    weight: np.ndarray  # (n_annotators,) what a ranking counts in the weighted consensus
    pairs: np.ndarray  # (n_annotators,) response pairs compared strictly with other annotators


def log_odds_weight(skill: float) -> float:
    """The weighted-majority weight of a voter with skill q (right with probability p = (1 + q) / 2)."""
    p = (1 + min(max(skill, 0.0), MAX_SKILL)) / 2
    return math.log(p / (1 - p))


def annotator_skills(*, agree: Any, compared: Any, n_annotators: int) -> Skills:
    """Skills from pair counts between annotators: agree[i, j] and compared[i, j] (scipy sparse or dense,
    symmetric, zero diagonal)."""
    import numpy as np
    from scipy import sparse

    agree, compared = sparse.csr_matrix(agree, dtype=float), sparse.csr_matrix(compared, dtype=float)
    pairs = np.asarray(compared.sum(axis=1)).ravel()
    known = pairs >= MIN_SKILL_PAIRS
    # Only annotators with enough pairs enter the fit: a few lucky agreements would pull their partners' skills.
    index = np.flatnonzero(known)
    agree, compared = agree[index][:, index], compared[index][:, index]
    residual = 2 * agree - compared  # sum over compared pairs of (2 * agreed - 1), the weighted q_i q_j
    fitted = np.full(len(index), 0.5)  # a positive start: the crowd is assumed better than a coin
    for _ in range(ALS_ROUNDS):
        num = residual @ fitted
        den = compared @ (fitted * fitted)
        with np.errstate(invalid="ignore", divide="ignore"):
            update = np.where(den > 0, np.clip(num / den, 0.0, MAX_SKILL), 0.0)
        # Damped: the plain update maps q to about c / q near the fit and so oscillates around it; the
        # geometric mean of the two lands on sqrt(c) at once.
        fitted = np.sqrt(fitted * update)
    q = np.zeros(n_annotators)
    q[index] = fitted
    weight = np.array([log_odds_weight(x) for x in q])
    fallback = float(np.median(weight[known])) if known.any() else 1.0
    weight = np.where(known, weight, fallback)
    return Skills(skill=np.where(known, q, np.nan), weight=weight, pairs=pairs.astype(np.int64))


def skills_from_signs(*, strict: np.ndarray, same: np.ndarray, first_annotator: np.ndarray, second_annotator: np.ndarray,
                      n_annotators: int) -> Skills:
    """Skills from every two rankings of one task (the agreement module's rows): per response pair whether
    both ordered it strictly and whether they ordered it alike, and who the two annotators are."""
    import numpy as np
    from scipy import sparse

    compared = strict.sum(axis=1)
    agreed = (strict & same).sum(axis=1)
    a, b = first_annotator, second_annotator
    other = a != b  # two rankings of one task by the same annotator (a re-ranking) say nothing of skill
    a, b, compared, agreed = a[other], b[other], compared[other], agreed[other]
    shape = (n_annotators, n_annotators)
    rows, cols = np.concatenate([a, b]), np.concatenate([b, a])
    agree = sparse.csr_matrix((np.concatenate([agreed, agreed]).astype(float), (rows, cols)), shape=shape)
    total = sparse.csr_matrix((np.concatenate([compared, compared]).astype(float), (rows, cols)), shape=shape)
    return annotator_skills(agree=agree, compared=total, n_annotators=n_annotators)


@dataclass(frozen=True)
class ConsensusWeights:
    """What each annotator's rankings count in a project's consensus: from its last agreement report."""

    by_user: dict[int, float]
    default: float  # annotators the report does not know yet: the median weight
    report_computed_at: str | None

    def of(self, user_id: int) -> float:
        return self.by_user.get(user_id, self.default)

    def as_json(self) -> dict:
        return {"weighting": "reliability", "report_computed_at": self.report_computed_at, "annotators": len(self.by_user),
                "default_weight": round(self.default, 4), "rule": WEIGHT_RULE}


def consensus_weights(*, project: Project, annotators: list[dict] | None = None) -> ConsensusWeights | None:
    """The project's reliability weights (None when its consensus is unweighted), from the last stored
    agreement report (refreshed by a worker after submissions), or from `annotators`, the rows of the
    report being computed; all 1 until a report exists."""
    if getattr(project, "consensus_weighting", "none") != "reliability":
        return None
    computed = None
    if annotators is None:
        from annotation.models import AgreementReport

        report = AgreementReport.objects.filter(project=project).values("result", "computed_at").first()
        annotators = ((report or {}).get("result") or {}).get("annotators") or []
        computed = report["computed_at"].isoformat() if report and report.get("computed_at") else None
    by_user = {int(r["user_id"]): float(r["weight"]) for r in annotators if r.get("user_id") is not None and r.get("weight") is not None}
    default = float(statistics.median(by_user.values())) if by_user else 1.0
    return ConsensusWeights(by_user=by_user, default=default, report_computed_at=computed)


def ranking_weights(weights: ConsensusWeights | None, annotator_ids: Iterable[int]) -> list[float] | None:
    """What each of these rankings (by these annotators) counts in the consensus; None: one each."""
    return None if weights is None else [weights.of(a) for a in annotator_ids]
