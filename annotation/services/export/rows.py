"""Row builders: one ranking task's data -> the rows of one format.

Rows are tuples in COLUMNS order (writers.py), or, for JSONL, finished lines built from
pre-encoded fragments (each prompt and response is encoded once per task, not once per row):
the bytes are those json.dumps(..., separators=(",", ":"), ensure_ascii=False) gives for the
tuple's objects (tests/export/test_rows.py checks it).

Tasks ranked alike share one Plan (pairs.plan_make), computed once per task *shape* in a
bounded cache. Counts of what was kept and dropped go to ExportStats, which the manifest carries.
"""
from __future__ import annotations

import hmac
import json
import math
import secrets
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from annotation.services.consensus import task_consensus
from annotation.services.export.options import ExportOptions
from annotation.services.export.pairs import Plan, plan_make, task_summary, tiers_as_ints, tiers_restrict
from annotation.services.export.reader import TaskData
from annotation.services.export.writers import LINES, dumps, encode_str, messages_json
from annotation.services.reliability import ranking_weights

if TYPE_CHECKING:
    from annotation.services.reliability import ConsensusWeights


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
    tasks_tied_for_best: int = 0  # sft: the consensus puts several responses first, so there is no one best
    demonstrations_not_accepted: int = 0  # sft of a reviewed demonstration project: pending or rejected ones
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


def _flag_list(flags: dict | None) -> list[dict[str, Any]]:
    """A ranking's flags ({"12": ["harmful"]}) as the export writes them: by response id, each a list of strings."""
    return [
        {"response_id": int(rid), "flags": [str(f) for f in (fl if isinstance(fl, list) else [fl])]}
        for rid, fl in sorted((flags or {}).items(), key=lambda kv: int(kv[0]))
    ]


def _float_json(value: float | None) -> str:
    if value is None:
        return "null"
    return float.__repr__(value) if math.isfinite(value) else json.dumps(value)  # as json.dumps writes floats


def _tiers_json(tiers: list[list[int]]) -> str:
    return "[" + ",".join("[" + ",".join(map(str, tier)) + "]" for tier in tiers) + "]"


def _int_list_json(text: str | None) -> str:
    """A display order (compact JSON text of ids) as the export writes it: a list of ints, [] when missing."""
    if not text or text == "null":
        return "[]"
    if '"' in text:  # ids stored as strings somewhere: normalise
        return dumps([int(x) for x in json.loads(text)])
    return text


PLAN_CACHE_SIZE = 200_000  # task shapes remembered; bounded, so memory stays flat
STRING_CACHE_SIZE = 10_000  # encoded model names and finish reasons remembered (there are a few)
EMPTY_STRING_JSON = '""'
SFT_ORIGIN_BEST_OF_N = "best_of_n"  # sft rows from ranking tasks
SFT_ORIGIN_DEMONSTRATION = "demonstration"  # sft rows written by annotators (sources.DemonstrationSource)
SOURCE_HUMAN, SOURCE_JUDGE = "human", "judge"  # the `source` column of every format
HUMAN_JSON = '"human"'


class RowBuilder:
    """Turns one task's data into rows of one format (tuples in COLUMNS order, or finished JSONL lines)."""

    def __init__(self, opts: ExportOptions, weights: ConsensusWeights | None = None) -> None:
        self.opts = opts
        self.weights = weights  # the project's reliability weights; None: every ranking counts 1
        self.salt = secrets.token_bytes(32)  # never stored: pseudonyms cannot be reversed
        self.pseudonyms: dict[int, str] = {}
        self.runs: dict[int, dict[str, Any]] = {}  # run id -> provenance, filled while reading
        self.jsonl = opts.file_format == "jsonl"
        self.plans: dict[tuple, Plan] = {}
        self._annotator_json: dict[int, str] = {}  # rankings JSONL: encoded once per annotator, run, string
        self._generation_prefix: dict[int, str] = {}
        self._strings: dict[str | None, str] = {}

    def annotator(self, user_id: int) -> str:
        name = self.pseudonyms.get(user_id)
        if name is None:
            name = self.pseudonyms[user_id] = "a_" + hmac.new(self.salt, str(user_id).encode(), "sha256").hexdigest()[:16]
        return name

    def _plan(self, tiers_list: list[list[list[int]]], ranked: set[int],
              weights: tuple[float, ...] | None = None) -> tuple[list[int], Plan]:
        """The task's plan over local labels 0..n-1 (its response ids in string order), and those ids.

        Tasks ranked alike (same shape in local labels) share one plan: with K=4 and three
        rankings there are only some thousands of shapes, so the consensus, votes, agreement
        and pairs are computed once per shape rather than once per task.
        """
        items = sorted(ranked, key=str)  # string order, as consensus.scores_to_tiers breaks ties
        local = {item: index for index, item in enumerate(items)}
        shape = tuple([tuple([tuple([local[x] for x in tier]) for tier in tiers]) for tiers in tiers_list])
        key = shape if weights is None else (shape, weights)
        plan = self.plans.get(key) if len(items) <= 10 else None  # labels 0..9 sort the same as strings
        if plan is None:
            plan = plan_make(list(shape), self.opts.policy, weights)
            if len(items) <= 10:
                if len(self.plans) >= PLAN_CACHE_SIZE:
                    self.plans.clear()
                self.plans[key] = plan
        return items, plan

    def rows(self, task: TaskData, stats: ExportStats) -> list:
        """The task's rows: tuples in COLUMNS order, or finished JSON lines for JSONL."""
        opts = self.opts
        if not task.rankings:
            stats.tasks_without_rankings += 1
            return []
        if len(task.rankings) < opts.min_votes:
            stats.tasks_below_min_votes += 1
            return []
        tiers_list = [r[1] for r in task.rankings]
        ranked = {item for tiers in tiers_list for tier in tiers for item in tier}
        normalised = False
        if ranked and type(next(iter(ranked))) is not int:  # stored as strings somewhere: normalise
            tiers_list = [tiers_as_ints(t) for t in tiers_list]
            ranked = {int(item) for item in ranked}
            normalised = True
        per_ranking = ranking_weights(self.weights, [r[0] for r in task.rankings])
        weights = None if per_ranking is None else tuple(per_ranking)  # a tuple: part of the plan cache's key
        items, plan = self._plan(tiers_list, ranked, weights)
        agreement = plan.agreement if len(tiers_list) > 1 else None
        if opts.min_agreement is not None and (agreement is None or agreement < opts.min_agreement):
            stats.tasks_below_min_agreement += 1
            return []
        stats.tasks_kept += 1
        stats.rankings_used += len(task.rankings)
        if opts.format == "rankings":
            if len(items) <= 10:
                consensus = [[items[i] for i in tier] for tier in plan.consensus]
            elif weights is not None:  # uncached plans are over local labels whose string order is not the ids'
                consensus = task_consensus(tiers_list, weights=weights).tiers
            else:
                consensus = task_summary(tiers_list)[0]
            if self.jsonl:
                return [self._ranking_line(task, tiers_list if normalised else None, consensus, agreement)]
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
            items, plan = self._plan(tiers_list, ranked, weights)
        if opts.format == "sft":
            return self._sft_rows(task, plan, items, len(tiers_list), agreement, stats)
        responses = task.responses
        if self.jsonl:
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
            line = LINES["pairs"]
            agreement_json = _float_json(agreement)
            return [line % (prompt, messages[b], messages[w], margin, prompt_id, items[b], items[w], cv, rv, agreement_json, HUMAN_JSON)
                    for b, w, cv, rv, margin in plan.pairs]
        return [(prompt, messages[b], messages[w], margin, prompt_id, items[b], items[w], cv, rv, agreement, SOURCE_HUMAN)
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
            line = LINES["unpaired"]
            return [line % (prompt, messages[i], "true" if label else "false", task.prompt_id, items[i], task.task_id, HUMAN_JSON)
                    for i, label in labelled]
        return [(prompt, messages[i], label, task.prompt_id, items[i], task.task_id, SOURCE_HUMAN) for i, label in labelled]

    def _sft_rows(self, task: TaskData, plan: Plan, items: list[int], votes: int, agreement: float | None,
                  stats: ExportStats) -> list:
        """Best-of-n: the task's consensus-best response as the assistant turn; none when several tie for best."""
        best = plan.consensus[0]
        if len(best) > 1:
            stats.tasks_tied_for_best += 1
            return []
        response_id = items[best[0]]
        row = (sft_messages(task.prompt, task.responses[response_id][0]), task.prompt_id, response_id, task.task_id,
               SFT_ORIGIN_BEST_OF_N, votes, agreement, None, SOURCE_HUMAN)
        return [sft_line(row)] if self.jsonl else [row]

    def _response_objects(self, task: TaskData) -> list[dict[str, Any]]:
        responses = []
        for rid, (text, run_id, sample_index, finish_reason, token_count, model_name) in task.responses.items():
            provenance = self.runs.get(run_id) if run_id is not None else None
            generation = None
            if provenance:
                generation = {**provenance, "sample_index": sample_index, "finish_reason": finish_reason, "token_count": token_count}
            model = model_name or (provenance or {}).get("model", "")
            responses.append({"id": rid, "content": text, "model": model, "generation": generation})
        return responses

    def _ranking_row(self, task: TaskData, tiers_list: list[list[list[int]]], consensus: list[list[int]],
                     agreement: float | None) -> tuple:
        annotations = []
        for (annotator_id, _tiers, flags, rating, rationale, duration, submitted_at, display_json, _), tiers in zip(
            task.rankings, tiers_list, strict=True
        ):
            annotations.append(
                {
                    "annotator": self.annotator(annotator_id),
                    "tiers": tiers,
                    "flags": _flag_list(flags),
                    "rating": rating,
                    "rationale": rationale,
                    "display_order": json.loads(_int_list_json(display_json)),
                    "duration_seconds": duration,
                    "submitted_at": submitted_at,
                }
            )
        return (task.prompt, self._response_objects(task), annotations, consensus, agreement, task.prompt_id, task.task_id,
                task.is_gold, SOURCE_HUMAN)

    def _ranking_line(self, task: TaskData, normalised_tiers: list | None, consensus: list[list[int]],
                      agreement: float | None) -> str:
        """_ranking_row's JSONL line, from pre-encoded fragments (the rankings export's hot loop)."""
        responses = []
        prefixes, strings, runs = self._generation_prefix, self._strings, self.runs
        for rid, (text, run_id, sample_index, finish_reason, token_count, model_name) in task.responses.items():
            generation = "null"
            provenance = runs.get(run_id) if run_id is not None else None
            if provenance:
                prefix = prefixes.get(run_id)
                if prefix is None:  # the run's provenance, encoded once per export
                    prefix = prefixes[run_id] = dumps(provenance)[:-1] + ',"sample_index":'
                reason = strings.get(finish_reason)
                if reason is None:
                    reason = "null" if finish_reason is None else encode_str(finish_reason)
                    if len(strings) < STRING_CACHE_SIZE:
                        strings[finish_reason] = reason
                generation = (f'{prefix}{"null" if sample_index is None else sample_index},"finish_reason":{reason},'
                              f'"token_count":{"null" if token_count is None else token_count}}}')
            model = model_name or (provenance["model"] if provenance else "")
            model_json = strings.get(model)
            if model_json is None:  # few distinct model names: encoded once each
                model_json = encode_str(model)
                if len(strings) < STRING_CACHE_SIZE:
                    strings[model] = model_json
            responses.append(f'{{"id":{rid},"content":{encode_str(text)},"model":{model_json},"generation":{generation}}}')
        annotations = []
        names = self._annotator_json
        for index, (annotator_id, _tiers, flags, rating, rationale, duration, submitted_at, display_json, tiers_json) in enumerate(
            task.rankings
        ):
            name = names.get(annotator_id)
            if name is None:
                name = names[annotator_id] = encode_str(self.annotator(annotator_id))
            if normalised_tiers is not None:
                tiers_json = _tiers_json(normalised_tiers[index])
            annotations.append(
                f'{{"annotator":{name},"tiers":{tiers_json},"flags":{dumps(_flag_list(flags)) if flags else "[]"},'
                f'"rating":{"null" if rating is None else rating},"rationale":{encode_str(rationale) if rationale else EMPTY_STRING_JSON},'
                f'"display_order":{_int_list_json(display_json)},"duration_seconds":{_float_json(duration)},'
                f'"submitted_at":{"null" if submitted_at is None else encode_str(submitted_at)}}}'
            )
        return LINES["rankings"] % (
            messages_json(task.prompt), "[" + ",".join(responses) + "]", "[" + ",".join(annotations) + "]", _tiers_json(consensus),
            _float_json(agreement), task.prompt_id, task.task_id, "true" if task.is_gold else "false", HUMAN_JSON,
        )


def sft_messages(prompt: list[dict[str, str]], text: str) -> list[dict[str, str]]:
    """TRL's conversational language-modelling example: the prompt's messages, then the response as the assistant turn."""
    return [*prompt, {"role": "assistant", "content": text}]


def sft_line(row: tuple) -> str:
    """The JSONL line of an sft row (a tuple in COLUMNS["sft"] order), whatever source made it."""
    messages, prompt_id, response_id, task_id, origin, votes, agreement, demonstration_id, source = row
    return LINES["sft"] % (messages_json(messages), prompt_id, "null" if response_id is None else response_id,
                           "null" if task_id is None else task_id, encode_str(origin), "null" if votes is None else votes,
                           _float_json(agreement), "null" if demonstration_id is None else demonstration_id, encode_str(source))
