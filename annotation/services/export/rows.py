"""Row builders: one task's data -> the rows of one format (tuples in COLUMNS order, or finished JSONL lines).

Tasks ranked alike share one Plan (pairs.plan_make), computed once per task *shape* in a
bounded cache. Counts of what was kept and dropped go to ExportStats, which the manifest carries.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from annotation.services.export.options import ExportOptions
from annotation.services.export.pairs import Plan, plan_make, task_summary, tiers_as_ints, tiers_restrict, votes_agreement
from annotation.services.export.reader import TaskData
from annotation.services.export.writers import PAIRS_LINE, UNPAIRED_LINE, encode_str, messages_json


@dataclass
class ExportStats:
    tasks_seen: int = 0
    tasks_kept: int = 0
    tasks_without_rankings: int = 0
    tasks_below_min_votes: int = 0
    tasks_below_min_agreement: int = 0
    rankings_used: int = 0
    responses_excluded_flagged: int = 0
    pairs_tied_dropped: int = 0
    pairs_contradicted_dropped: int = 0
    pairs_without_votes: int = 0
    rows: dict[str, int] = field(default_factory=lambda: {"train": 0, "test": 0})
    prompts: dict[str, int] = field(default_factory=lambda: {"train": 0, "test": 0})

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def _flagged(rankings: list[tuple]) -> set[int]:
    out: set[int] = set()
    for ranking in rankings:
        for response_id, flags in (ranking[2] or {}).items():
            if flags:
                out.add(int(response_id))
    return out


PLAN_CACHE_SIZE = 200_000  # task shapes remembered; bounded, so memory stays flat


class RowBuilder:
    """Turns one task's data into rows of one format (tuples in COLUMNS order)."""

    def __init__(self, opts: ExportOptions) -> None:
        self.opts = opts
        self.salt = secrets.token_bytes(32)  # never stored: pseudonyms cannot be reversed
        self.pseudonyms: dict[int, str] = {}
        self.runs: dict[int, dict[str, Any]] = {}  # run id -> provenance, filled while reading
        self.response_details: dict[int, dict[str, Any]] = {}  # rankings only: per chunk
        self.jsonl = opts.file_format == "jsonl" and opts.format in ("pairs", "unpaired")
        self.plans: dict[tuple, Plan] = {}

    def annotator(self, user_id: int) -> str:
        name = self.pseudonyms.get(user_id)
        if name is None:
            name = self.pseudonyms[user_id] = "a_" + hmac.new(self.salt, str(user_id).encode(), "sha256").hexdigest()[:16]
        return name

    def _plan(self, tiers_list: list[list[list[int]]], ranked: set[int]) -> tuple[list[int], Plan]:
        """The task's plan over local labels 0..n-1 (its response ids in string order), and those ids.

        Tasks ranked alike (same shape in local labels) share one plan: with K=4 and three
        rankings there are only some thousands of shapes, so the consensus, votes, agreement
        and pairs are computed once per shape rather than once per task.
        """
        items = sorted(ranked, key=str)  # string order, as consensus.scores_to_tiers breaks ties
        local = {item: index for index, item in enumerate(items)}
        key = tuple([tuple([tuple([local[x] for x in tier]) for tier in tiers]) for tiers in tiers_list])
        plan = self.plans.get(key) if len(items) <= 10 else None  # labels 0..9 sort the same as strings
        if plan is None:
            plan = plan_make(list(key), self.opts.policy)
            if len(items) <= 10:
                if len(self.plans) >= PLAN_CACHE_SIZE:
                    self.plans.clear()
                self.plans[key] = plan
        return items, plan

    def rows(self, task: TaskData, stats: ExportStats) -> list:
        """The task's rows: tuples in COLUMNS order, or finished JSON lines for pairs/unpaired JSONL."""
        opts = self.opts
        if not task.rankings:
            stats.tasks_without_rankings += 1
            return []
        if len(task.rankings) < opts.min_votes:
            stats.tasks_below_min_votes += 1
            return []
        tiers_list = [r[1] for r in task.rankings]
        ranked = {item for tiers in tiers_list for tier in tiers for item in tier}
        if ranked and type(next(iter(ranked))) is not int:  # stored as strings somewhere: normalise
            tiers_list = [tiers_as_ints(t) for t in tiers_list]
            ranked = {int(item) for item in ranked}
        if opts.format == "rankings":
            consensus, votes = task_summary(tiers_list)
            agreement = votes_agreement(votes) if len(tiers_list) > 1 else None
        else:
            items, plan = self._plan(tiers_list, ranked)
            agreement = plan.agreement if len(tiers_list) > 1 else None
        if opts.min_agreement is not None and (agreement is None or agreement < opts.min_agreement):
            stats.tasks_below_min_agreement += 1
            return []
        stats.tasks_kept += 1
        stats.rankings_used += len(task.rankings)
        if opts.format == "rankings":
            return [self._ranking_row(task, tiers_list, consensus, agreement)]
        keep = set(task.responses)
        if opts.exclude_flagged:
            flagged = _flagged(task.rankings) & keep
            stats.responses_excluded_flagged += len(flagged)
            keep -= flagged
        if not ranked <= keep:  # flagged, or not (or no longer) among the task's responses
            tiers_list = [tiers_restrict(t, keep) for t in tiers_list]
            ranked &= keep
            if not ranked:
                return []
            items, plan = self._plan(tiers_list, ranked)
        responses = task.responses
        if self.jsonl:
            # Finished lines: the prompt and each response are encoded once per task, not per row.
            prompt = messages_json(task.prompt)
            messages = ['[{"role":"assistant","content":' + encode_str(responses[rid][0]) + "}]" for rid in items]
        else:
            prompt = task.prompt
            messages = [[{"role": "assistant", "content": responses[rid][0]}] for rid in items]
        stats.pairs_tied_dropped += plan.tied
        if opts.format == "unpaired":
            return self._unpaired_rows(task, plan, items, messages, prompt)
        stats.pairs_contradicted_dropped += plan.contradicted
        stats.pairs_without_votes += plan.without_votes
        prompt_id = task.prompt_id
        if self.jsonl:
            agreement_json = "null" if agreement is None else repr(agreement)
            return [PAIRS_LINE % (prompt, messages[b], messages[w], margin, prompt_id, items[b], items[w], cv, rv, agreement_json)
                    for b, w, cv, rv, margin in plan.pairs]
        return [(prompt, messages[b], messages[w], margin, prompt_id, items[b], items[w], cv, rv, agreement)
                for b, w, cv, rv, margin in plan.pairs]

    def _unpaired_rows(self, task: TaskData, plan: Plan, items: list[int], messages: list, prompt: Any) -> list:
        consensus = plan.consensus
        if len(consensus) < 2:
            return []  # everything tied: nothing is better or worse
        top = min(self.opts.desirable_tiers, len(consensus) - 1)
        bottom = min(self.opts.undesirable_tiers, len(consensus) - top)
        labelled = [(i, True) for tier in consensus[:top] for i in tier]
        labelled += [(i, False) for tier in consensus[len(consensus) - bottom :] for i in tier]
        if self.jsonl:
            return [UNPAIRED_LINE % (prompt, messages[i], "true" if label else "false", task.prompt_id, items[i], task.task_id)
                    for i, label in labelled]
        return [(prompt, messages[i], label, task.prompt_id, items[i], task.task_id) for i, label in labelled]

    def _ranking_row(self, task: TaskData, tiers_list: list[list[list[int]]], consensus: list[list[int]],
                     agreement: float | None) -> tuple:
        responses = []
        for rid, (text, run_id) in task.responses.items():
            provenance = dict(self.runs.get(run_id) or {}) if run_id is not None else {}
            generation = None
            if provenance:
                generation = {**provenance, "sample_index": None, "finish_reason": None, "token_count": None}
                generation.update({k: v for k, v in self.response_details.get(rid, {}).items() if k != "model"})
            details = self.response_details.get(rid, {})
            model = details.get("model") or provenance.get("model", "")
            responses.append({"id": rid, "content": text, "model": model, "generation": generation})
        annotations = []
        for (annotator_id, _tiers, flags, rating, rationale, duration, created_at, display_order), tiers in zip(
            task.rankings, tiers_list, strict=True
        ):
            annotations.append(
                {
                    "annotator": self.annotator(annotator_id),
                    "tiers": tiers,
                    "flags": [
                        {"response_id": int(rid), "flags": [str(f) for f in (fl if isinstance(fl, list) else [fl])]}
                        for rid, fl in sorted((flags or {}).items(), key=lambda kv: int(kv[0]))
                    ],
                    "rating": rating,
                    "rationale": rationale,
                    "display_order": [int(x) for x in (display_order or [])],
                    "duration_seconds": duration,
                    "submitted_at": created_at.isoformat() if created_at else None,
                }
            )
        return (task.prompt, responses, annotations, consensus, agreement, task.prompt_id, task.task_id, task.is_gold)
