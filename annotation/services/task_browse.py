"""Browsing and curating a project's tasks (engineers read, admins change): the filtered list, one
task with everything said about it, and the curation actions (more rankings, priority, exclusion
from exports), one task at a time or on a filtered selection.

The list reads columns only: the ranking count is `submitted_count`, the agreement the stored
`RankingTask.agreement` (services/task_agreement.py), the orderings have their indexes
(`task_by_agreement`, `task_by_created`, `task_by_priority`), and full-text search uses the GIN
expression indexes of annotation/sql/curation.py. A page is two queries (count, rows), whatever
the project's size.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Case, Exists, F, OuterRef, Q, QuerySet, TextField, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from annotation.errors import ApplicationError, NotFound
from annotation.models import GenerationRun, JudgeComparison, JudgeRanking, JudgeRun, Project, Ranking, RankingTask, Role
from annotation.services.access import project_and_role_get_for_user
from annotation.services.consensus import task_consensus
from annotation.services.reliability import consensus_weights, ranking_weights
from annotation.services.validation import INT32_MAX, INT32_MIN
from annotation.sql import curation as sql
from annotation.sql import postgres_statements

STATUSES = ("open", "in_progress", "complete")
ORDERINGS = {
    # Disagreement triage: the least agreed first; tasks with fewer than two rankings (no agreement) last.
    "agreement": (F("agreement").asc(nulls_last=True), F("id").asc()),
    "-created_at": (F("created_at").desc(), F("id").desc()),
    "-priority": (F("priority").desc(), F("id").desc()),
}
DEFAULT_ORDERING = "-created_at"
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
MAX_QUERY_LENGTH = 200
FILTER_NAMES = ("status", "gold", "flagged", "excluded", "judged", "agreement_lt", "agreement_gt", "rankings", "run", "q", "ordering")
BULK_ACTIONS = ("more_rankings", "priority", "exclude", "include")

# What each status means, as a filter; `task_status` says the same of one row.
STATUS_Q = {
    "complete": Q(is_complete=True),
    "in_progress": Q(is_complete=False) & (Q(active_count__gt=0) | Q(submitted_count__gt=0)),
    "open": Q(is_complete=False, active_count=0, submitted_count=0),
}


def task_status(task: RankingTask) -> str:
    """open: nobody on it; in_progress: leased or partly ranked; complete: ranked by its whole overlap."""
    if task.is_complete:
        return "complete"
    return "in_progress" if task.active_count or task.submitted_count else "open"


@dataclass(frozen=True)
class TaskFilters:
    status: str | None = None
    gold: bool | None = None
    flagged: bool | None = None
    excluded: bool | None = None
    judged: bool | None = None
    agreement_lt: float | None = None
    agreement_gt: float | None = None
    rankings: int | None = None
    run: int | None = None
    q: str = ""
    ordering: str = DEFAULT_ORDERING

    def as_params(self) -> dict[str, str]:
        """The filters as query parameters (the ones set), for links and the bulk form."""
        out: dict[str, str] = {}
        for name in FILTER_NAMES:
            value = getattr(self, name)
            if value is None or value == "" or (name == "ordering" and value == DEFAULT_ORDERING):
                continue
            out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return out


def _number(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def task_filters_parse(*, params: Mapping[str, Any], project: Project) -> TaskFilters:
    """The filters from query parameters (or a bulk request's `filters`); one 400 naming every bad one.

    Unknown names are ignored (limit and offset live beside them); blank values mean "not set".
    """
    problems: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    for name in FILTER_NAMES:
        raw = params.get(name)
        if raw is None:
            continue
        if isinstance(raw, bool):
            raw = "true" if raw else "false"
        text = str(raw).strip()
        if text == "":
            continue
        if name == "status":
            if text not in STATUSES:
                problems[name] = [f"must be one of {', '.join(STATUSES)}"]
            values[name] = text
        elif name in ("gold", "flagged", "excluded", "judged"):
            if text.lower() not in BOOLEANS:
                problems[name] = ["must be true or false"]
            values[name] = BOOLEANS.get(text.lower())
        elif name in ("agreement_lt", "agreement_gt"):
            number = _number(text)
            if number is None or not 0 <= number <= 1:
                problems[name] = ["must be a number from 0 to 1"]
            values[name] = number
        elif name in ("rankings", "run"):
            if not (text.isascii() and text.isdigit() and len(text) <= 18):
                problems[name] = ["must be a non-negative integer" if name == "rankings" else "must be a generation run id"]
                continue
            values[name] = int(text)
        elif name == "q":
            if len(text) > MAX_QUERY_LENGTH:
                problems[name] = [f"must be at most {MAX_QUERY_LENGTH} characters"]
            values[name] = text
        elif name == "ordering":
            if text not in ORDERINGS:
                problems[name] = [f"must be one of {', '.join(ORDERINGS)}"]
            values[name] = text
    if "run" in values and "run" not in problems and not GenerationRun.objects.filter(pk=values["run"], project=project).exists():
        problems["run"] = [f"no generation run {values['run']} in this project"]
    if problems:
        raise ApplicationError("Invalid task filters: " + ", ".join(sorted(problems)) + ".", fields=problems)
    return TaskFilters(**values)


def _search(tasks: QuerySet, *, project: Project, q: str) -> QuerySet:
    """Tasks whose prompt or one of whose responses matches `q` (full-text on PostgreSQL, icontains elsewhere)."""
    if postgres_statements():
        # Statements built from names only (annotation.sql.curation); the values travel as parameters.
        return tasks.filter(id__in=RawSQL(sql.tasks_matching_sql(), [project.pk, q] * 3))  # noqa: S611
    through = RankingTask.responses.through
    with_response = through.objects.filter(response__text__icontains=q).values("rankingtask_id")
    return tasks.alias(prompt_text=Cast("prompt__messages", TextField())).filter(
        Q(prompt_text__icontains=q) | Q(id__in=with_response)
    )


def tasks_filtered(*, project: Project, filters: TaskFilters) -> QuerySet:
    """The project's tasks matching `filters`, unordered."""
    tasks = RankingTask.objects.filter(project=project)
    if filters.status:
        tasks = tasks.filter(STATUS_Q[filters.status])
    if filters.gold is not None:
        tasks = tasks.filter(is_gold=filters.gold)
    if filters.excluded is not None:
        tasks = tasks.filter(excluded=filters.excluded)
    if filters.flagged is not None:
        flagged = Exists(Ranking.objects.filter(task=OuterRef("pk")).exclude(flags={}))
        tasks = tasks.filter(flagged if filters.flagged else ~flagged)
    if filters.judged is not None:
        # One EXISTS on judge_ranking's task index, so the page stays two statements at any size.
        judged = Exists(JudgeRanking.objects.filter(task=OuterRef("pk")))
        tasks = tasks.filter(judged if filters.judged else ~judged)
    if filters.agreement_lt is not None:
        tasks = tasks.filter(agreement__lt=filters.agreement_lt)
    if filters.agreement_gt is not None:
        tasks = tasks.filter(agreement__gt=filters.agreement_gt)
    if filters.rankings is not None:
        tasks = tasks.filter(submitted_count=filters.rankings)
    if filters.run is not None:
        through = RankingTask.responses.through
        tasks = tasks.filter(id__in=through.objects.filter(response__run_id=filters.run).values("rankingtask_id"))
    if filters.q:
        tasks = _search(tasks, project=project, q=filters.q)
    return tasks


def tasks_browse(*, project: Project, filters: TaskFilters) -> QuerySet:
    """The list: matching tasks in the filters' order, each with its prompt's messages (one join)."""
    return (
        tasks_filtered(project=project, filters=filters)
        .select_related("prompt")
        .only("id", "project_id", "prompt__id", "prompt__messages", "prompt__external_id", "overlap", "is_gold", "priority",
              "submitted_count", "active_count", "is_complete", "agreement", "excluded", "created_at")
        .order_by(*ORDERINGS[filters.ordering])
    )


def prompt_first_line(messages: Any, length: int = 200) -> str:
    """The first non-blank line of the prompt's last user turn (its question), cut to `length`."""
    turns = [m for m in (messages or []) if isinstance(m, dict)]
    last_user = next((m for m in reversed(turns) if m.get("role") == "user"), turns[-1] if turns else {})
    line = next((line.strip() for line in str(last_user.get("content", "")).splitlines() if line.strip()), "")
    return line if len(line) <= length else line[: length - 1] + "…"


def task_list_item(task: RankingTask) -> dict[str, Any]:
    return {
        "id": task.pk, "status": task_status(task), "is_gold": task.is_gold, "rankings": task.submitted_count,
        "overlap": task.overlap, "agreement": task.agreement, "priority": task.priority, "excluded": task.excluded,
        "prompt_external_id": task.prompt.external_id, "prompt_first_line": prompt_first_line(task.prompt.messages),
        "created_at": task.created_at,
    }


# --- one task -------------------------------------------------------------------------------------

def task_get_for_user(*, user: AbstractBaseUser, task_id: int, min_role: str = Role.ENGINEER) -> tuple[RankingTask, str]:
    """The task with the caller's role in its project; a missing task and another tenant's task are
    the same 404, a too-low role is 403."""
    task = RankingTask.objects.select_related("prompt").filter(pk=task_id).first()
    if task is None:
        raise NotFound("Task not found.")
    try:
        project, role = project_and_role_get_for_user(user=user, project_ref=task.project_id, min_role=min_role)
    except NotFound as exc:
        raise NotFound("Task not found.") from exc
    task.project = project
    return task, role


def annotator_pseudonym(*, project_id: int, user_id: int) -> str:
    """A stable name for an annotator within one project that does not reveal who they are."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"curation:{project_id}:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"annotator-{digest[:8]}"


def task_judgements(*, task: RankingTask) -> list[dict[str, Any]]:
    """What each judge run said about the task, oldest run first: its model and constitution version,
    its ranking (tiers; None when it wrote none, e.g. every comparison failed) and each comparison in
    both orders.

    Two statements whatever the number of runs: the comparisons and the rankings, each with its run
    and the run's constitution in the same join.
    """
    run_fields = ("run__id", "run__backend", "run__model_name", "run__model_revision", "run__status", "run__created_at",
                  "run__constitution__id", "run__constitution__version")
    comparisons = list(JudgeComparison.objects.filter(task=task).select_related("run__constitution")
                       .only("id", "run_id", "response_a_id", "response_b_id", "principle", "principle_index", "p_first",
                             "p_second", "prob_a", "orders_agree", "hard_label", "failed", "failed_text", *run_fields)
                       .order_by("run_id", "id"))
    rankings = {r.run_id: r for r in JudgeRanking.objects.filter(task=task).select_related("run__constitution")
                .only("id", "run_id", "tiers", "confident", *run_fields)}
    runs: dict[int, JudgeRun] = {r.run_id: r.run for r in rankings.values()} | {c.run_id: c.run for c in comparisons}
    by_run: dict[int, list[JudgeComparison]] = {}
    for c in comparisons:
        by_run.setdefault(c.run_id, []).append(c)
    out = []
    for run_id in sorted(runs):
        run, ranking = runs[run_id], rankings.get(run_id)
        out.append({
            "run": run.pk, "backend": run.backend, "model": run.model_name, "model_revision": run.model_revision,
            "status": run.status, "constitution_version": run.constitution.version, "created_at": run.created_at,
            "tiers": ranking.tiers if ranking else None, "confident": ranking.confident if ranking else None,
            "comparisons": [
                {"id": c.pk, "response_a": c.response_a_id, "response_b": c.response_b_id, "principle": c.principle,
                 "principle_index": c.principle_index, "p_first": c.p_first, "p_second": c.p_second, "prob_a": c.prob_a,
                 "orders_agree": c.orders_agree, "hard_label": c.hard_label, "failed": c.failed, "failed_text": c.failed_text}
                for c in by_run.get(run_id, [])
            ],
        })
    return out


def task_detail(*, task: RankingTask, role: str) -> dict[str, Any]:
    """Everything said about one task: prompt, responses with provenance, rankings (real annotator
    names for admins, pseudonyms for engineers), flags, rationales, durations, consensus, agreement,
    and the judge's rankings and comparisons (task_judgements)."""
    responses = list(task.responses.select_related("run").order_by("id"))
    rankings = list(
        Ranking.objects.filter(task=task).select_related("annotator").order_by("id")
        .only("id", "tiers", "flags", "rating", "rationale", "duration_seconds", "created_at", "annotator__id", "annotator__username")
    )
    weights = ranking_weights(consensus_weights(project=task.project), [r.annotator_id for r in rankings])
    consensus = task_consensus([r.tiers for r in rankings], with_bradley_terry=True, weights=weights)
    names_shown = role == Role.ADMIN
    return {
        "id": task.pk,
        "project": task.project_id,
        "status": task_status(task),
        "is_gold": task.is_gold,
        "gold_ranking": task.gold_ranking,
        "priority": task.priority,
        "overlap": task.overlap,
        "rankings_count": task.submitted_count,
        "active_count": task.active_count,
        "is_complete": task.is_complete,
        "excluded": task.excluded,
        "agreement": task.agreement,
        "created_at": task.created_at,
        "prompt": {"id": task.prompt_id, "external_id": task.prompt.external_id, "messages": task.prompt.messages,
                   "metadata": task.prompt.metadata},
        "responses": [
            {"id": r.pk, "text": r.text, "run": r.run_id, "run_model": r.run.model_name if r.run else None,
             "model": r.model_name, "sample_index": r.sample_index, "token_count": r.token_count,
             "finish_reason": r.finish_reason, "prompt_truncated": r.prompt_truncated}
            for r in responses
        ],
        "rankings": [
            {"id": r.pk,
             "annotator": r.annotator.username if names_shown else annotator_pseudonym(project_id=task.project_id, user_id=r.annotator_id),
             "tiers": r.tiers, "flags": r.flags, "rating": r.rating, "rationale": r.rationale,
             "duration_seconds": r.duration_seconds, "created_at": r.created_at}
            for r in rankings
        ],
        "consensus": {
            "tiers": consensus.tiers,
            "borda": {str(k): v for k, v in consensus.borda.items()},
            "bradley_terry": {str(k): round(v, 6) for k, v in consensus.bradley_terry.items()},
            "votes": consensus.votes,
        },
        "judge": task_judgements(task=task),
    }


# --- curation actions (admins) --------------------------------------------------------------------

def priority_problem(value: Any) -> str:
    ok = isinstance(value, int) and not isinstance(value, bool) and INT32_MIN <= value <= INT32_MAX
    return "" if ok else "must be a 32-bit integer"


def _more_rankings(tasks: QuerySet) -> int:
    # One UPDATE: PostgreSQL re-reads a row a concurrent submission just changed before applying it,
    # so submitted_count and the overlap are the committed ones and is_complete follows the same
    # rule as a submission (sql/ranking.py): complete once the rankings it may get now are in
    # (target_overlap under adaptive overlap, else overlap), gold never. SET reads the old row.
    return tasks.update(
        overlap=F("overlap") + 1,
        target_overlap=Case(When(target_overlap__isnull=True, then=Value(None)), default=F("target_overlap") + 1),
        is_complete=Case(
            When(is_gold=True, then=Value(False)),
            When(target_overlap__isnull=False, submitted_count__gte=F("target_overlap") + 1, then=Value(True)),
            When(target_overlap__isnull=True, submitted_count__gte=F("overlap") + 1, then=Value(True)),
            default=Value(False),
        ),
    )


@transaction.atomic
def task_request_more_rankings(*, task: RankingTask) -> RankingTask:
    """Send a task back for one more ranking: its overlap rises by one, which reopens it."""
    _more_rankings(RankingTask.objects.filter(pk=task.pk))
    task.refresh_from_db(fields=["overlap", "target_overlap", "is_complete", "submitted_count", "active_count"])
    return task


@transaction.atomic
def task_set_priority(*, task: RankingTask, priority: Any) -> RankingTask:
    problem = priority_problem(priority)
    if problem:
        raise ApplicationError("Invalid priority.", fields={"priority": [problem]})
    RankingTask.objects.filter(pk=task.pk).update(priority=priority)
    task.priority = priority
    return task


@transaction.atomic
def task_set_excluded(*, task: RankingTask, excluded: bool) -> RankingTask:
    RankingTask.objects.filter(pk=task.pk).update(excluded=bool(excluded))
    task.excluded = bool(excluded)
    return task


@transaction.atomic
def tasks_bulk_apply(*, project: Project, filters: TaskFilters, action: Any, priority: Any = None) -> int:
    """Apply one curation action to every task of the project matching `filters`; the number changed.

    more_rankings: overlap + 1 (reopens them); priority: set it; exclude / include: from exports.
    """
    problems: dict[str, list[str]] = {}
    if action not in BULK_ACTIONS:
        problems["action"] = [f"must be one of {', '.join(BULK_ACTIONS)}"]
    elif action == "priority" and priority_problem(priority):
        problems["priority"] = [priority_problem(priority)]
    if problems:
        raise ApplicationError("Invalid bulk action.", fields=problems)
    # The selection is resolved in one subquery inside the UPDATE, so it is the state at that instant.
    selected = RankingTask.objects.filter(project=project, pk__in=tasks_filtered(project=project, filters=filters).values("pk"))
    if action == "more_rankings":
        return _more_rankings(selected)
    if action == "priority":
        return selected.update(priority=priority)
    return selected.update(excluded=action == "exclude")
