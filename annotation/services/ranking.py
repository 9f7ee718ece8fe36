"""Submitting a ranking: validation, the lease holder's rights, late submissions, idempotency.

A submission names tiers of the opaque ids its assignment showed (`[["r7"], ["r2", "r9"]]`: r7 is
best, r2 and r9 tie). It is stored with real response ids, so nothing downstream needs the opaque
ids. Exactly one Ranking exists per assignment (a one-to-one row) and one assignment per (task,
annotator), so one annotator can never store two rankings of one task.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.errors import ApplicationError, Conflict
from annotation.models import Assignment, AssignmentStatus, Project, Ranking, ResponseFlag, TaskType, WebhookEvent
from annotation.services.agreement_cache import agreement_schedule_refresh
from annotation.services.assignment import (
    NoTask,
    assignment_get_for_annotator,
    assignment_lease_next,
    assignment_retake_slot,
    held_allow_ties,
    held_task_type,
)
from annotation.services.consensus import tiers_problems
from annotation.services.ranking_stats import ranking_vectors
from annotation.services.task_agreement import adaptive_decided, task_agreement_store, task_rankings
from annotation.services.validation import is_int, is_number
from annotation.services.webhooks import webhook_events_emit
from annotation.sql import postgres_statements
from annotation.sql import ranking as sql

RESPONSE_FLAGS = tuple(ResponseFlag.values)
MAX_RATIONALE = 10_000
MAX_DURATION_SECONDS = 24 * 3600
MAX_IDEMPOTENCY_KEY = 200


@dataclass
class SubmitResult:
    ranking: Ranking
    replayed: bool  # True: this answers a retry with the first submission's result
    late: bool  # True: accepted after the lease had run out, because the slot was still free
    project: Project | None = None  # with read_project: the assignment's project, read with it


def ranking_validate(
    *,
    assignment: Assignment,
    ranking: Any,
    flags: Any = None,
    all_bad: Any = False,
    rating: Any = None,
    rationale: Any = "",
    duration_seconds: Any = None,
) -> dict[str, list[str]]:
    """Every problem with this submission for this assignment, field -> messages (empty: valid)."""
    errors: dict[str, list[str]] = {}
    shown = set(assignment.opaque_ids)
    problems = tiers_problems(tiers=ranking, allowed=shown, allow_ties=held_allow_ties(assignment))
    if problems:
        errors["ranking"] = problems
    if isinstance(ranking, list) and any(isinstance(t, list) and any(not isinstance(x, str) for x in t) for t in ranking):
        errors.setdefault("ranking", []).insert(0, "response ids must be strings such as \"r7\"")

    if flags is not None:
        if not isinstance(flags, dict):
            errors["flags"] = ["must be an object: response id -> list of flags"]
        else:
            for key, values in flags.items():
                if key not in shown:
                    errors.setdefault("flags", []).append(f"unknown response id {key!r}")
                elif not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                    errors.setdefault("flags", []).append(f"flags of {key} must be a list of strings")
                else:
                    unknown = sorted(set(values) - set(RESPONSE_FLAGS))
                    if unknown:
                        errors.setdefault("flags", []).append(
                            f"unknown flag(s) {', '.join(unknown)} on {key}; allowed: {', '.join(RESPONSE_FLAGS)}"
                        )
    if not isinstance(all_bad, bool):
        errors["all_bad"] = ["must be true or false"]
    if rating is not None and not (is_int(rating) and 1 <= rating <= 7):
        errors["rating"] = ["must be an integer from 1 to 7, or null"]
    if not isinstance(rationale, str):
        errors["rationale"] = ["must be a string"]
    elif len(rationale) > MAX_RATIONALE:
        errors["rationale"] = [f"must be at most {MAX_RATIONALE} characters"]
    if duration_seconds is not None and not (is_number(duration_seconds) and 0 <= duration_seconds <= MAX_DURATION_SECONDS):
        errors["duration_seconds"] = [f"must be a number of seconds from 0 to {MAX_DURATION_SECONDS}, or null"]
    return errors


def _stored_flags(*, assignment: Assignment, flags: dict[str, list[str]] | None, all_bad: bool) -> dict[str, list[str]]:
    """Flags keyed by real response id (as a string: JSON keys), each list sorted and unique."""
    out: dict[str, list[str]] = {}
    for opaque, values in (flags or {}).items():
        if values:
            out[str(assignment.opaque_ids[opaque])] = sorted(set(values))
    if all_bad:
        for response_id in assignment.opaque_ids.values():
            key = str(response_id)
            out[key] = sorted(set(out.get(key, [])) | {"all_bad"})
    return out


@transaction.atomic
def ranking_submit(
    *,
    assignment_id: int,
    annotator: AbstractBaseUser,
    ranking: Any,
    flags: Any = None,
    all_bad: Any = False,
    rating: Any = None,
    rationale: Any = "",
    duration_seconds: Any = None,
    idempotency_key: str = "",
    now: datetime | None = None,
    read_project: bool = False,
) -> SubmitResult:
    """Store the lease holder's ranking of their assignment, once.

    `read_project`: the result carries the assignment's whole project row, read by the same first
    statement (for a caller that leases next in it: ranking_submit_and_lease_next).

    - Only the assignment's annotator may submit (anyone else: NotFound).
    - A retry carrying the first submission's Idempotency-Key gets the first result back
      (replayed=True); any other second submission is a Conflict: one ranking per assignment.
    - After the lease ran out: kept if the slot is still free (late=True), else Conflict.
    - Bad input: ApplicationError naming every bad field; nothing is stored.
    """
    now = now or timezone.now()
    if not isinstance(idempotency_key, str) or len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise ApplicationError(
            "Invalid Idempotency-Key header.",
            fields={"Idempotency-Key": [f"must be at most {MAX_IDEMPOTENCY_KEY} characters"]},
        )
    # The row lock makes concurrent retries of one submission queue up here, so the second one
    # sees the first one's result.
    assignment = assignment_get_for_annotator(assignment_id=assignment_id, annotator=annotator, lock=True, with_project=read_project,
                                             lock_task=postgres_statements())
    project = assignment.project if read_project else None
    if held_task_type(assignment) == TaskType.DEMONSTRATION:
        raise ApplicationError(
            "This is a demonstration task: submit `text`, not `ranking`.", fields={"ranking": ["this task is written, not ranked"]}
        )
    if assignment.status == AssignmentStatus.SUBMITTED:
        existing = Ranking.objects.get(assignment=assignment)
        if idempotency_key and existing.idempotency_key == idempotency_key:
            return SubmitResult(ranking=existing, replayed=True, late=False, project=project)
        raise Conflict(
            "This assignment was already submitted; its first ranking is kept.",
            extra={"reason": "already_submitted", "ranking_id": existing.pk},
        )

    errors = ranking_validate(
        assignment=assignment,
        ranking=ranking,
        flags=flags,
        all_bad=all_bad,
        rating=rating,
        rationale=rationale,
        duration_seconds=duration_seconds,
    )
    if errors:
        raise ApplicationError(f"Invalid submission: {', '.join(errors)}.", fields=errors)

    if assignment.status == AssignmentStatus.SKIPPED:
        raise Conflict("You skipped this task; a skipped task cannot be submitted.", extra={"reason": "already_skipped"})
    late = assignment.lease_expires_at <= now
    if assignment.status == AssignmentStatus.EXPIRED:
        assignment_retake_slot(assignment=assignment, now=now)  # Conflict when the slot is gone
        late = True

    tiers = [[assignment.opaque_ids[opaque] for opaque in tier] for tier in ranking]
    rank_vector, display_vector = ranking_vectors(tiers=tiers, display_order=assignment.display_order)
    stored = Ranking(
        assignment=assignment,
        project_id=assignment.project_id,
        task_id=assignment.task_id,
        annotator=annotator,
        tiers=tiers,
        flags=_stored_flags(assignment=assignment, flags=flags, all_bad=all_bad),
        rating=rating,
        rationale=rationale.strip(),
        duration_seconds=float(duration_seconds) if duration_seconds is not None else (now - assignment.leased_at).total_seconds(),
        idempotency_key=idempotency_key,
        created_at=now,
        rank_vector=rank_vector,
        display_vector=display_vector,
    )
    if postgres_statements():
        # The task row is locked since the first statement (lock_task), so the store statement reads
        # the task's earlier rankings itself; a first ranking has nothing to agree with (the store
        # statement left its agreement NULL) and costs no further statement.
        complete, submitted_count, rankings = sql.store(ranking=stored, submitted=AssignmentStatus.SUBMITTED.value, now=now)
        agreement = task_agreement_store(task_id=assignment.task_id, tiers=rankings) if submitted_count >= 2 else None
    else:  # the portable twin: the same three writes as three statements
        stored.save(force_insert=True)
        Assignment.objects.filter(pk=assignment.pk).update(status=AssignmentStatus.SUBMITTED, finished_at=now)
        complete = sql.count_submission(task_id=assignment.task_id)
        rankings = task_rankings(task_id=assignment.task_id)
        agreement = task_agreement_store(task_id=assignment.task_id, tiers=rankings)
    if getattr(assignment, "held_adaptive", False) and not complete:
        # Adaptive overlap: the project's rule, on the rankings read under the task row's lock, decides
        # between complete and one more annotator.
        decided = adaptive_decided(rule=assignment.held_adaptive_rule, target=assignment.held_agreement_target,
                                   rankings=rankings, agreement=agreement)
        complete = sql.decide_adaptive(task_id=assignment.task_id, decided=decided)
    # task.completed: this submission's counter update (under the task row's lock, which orders
    # concurrent submissions) left the task complete. Sent once per webhook (docs/webhooks.md).
    if complete:
        webhook_events_emit(project_id=assignment.project_id, event=WebhookEvent.TASK_COMPLETED, object_id=assignment.task_id, now=now)
    transaction.on_commit(partial(agreement_schedule_refresh, project_id=assignment.project_id))
    return SubmitResult(ranking=stored, replayed=False, late=late, project=project)


@dataclass
class SubmitNextResult:
    submitted: SubmitResult
    next: Assignment | NoTask  # what next-task would answer now (with `after`: its prefetch)
    project: Project | None  # None: the caller may no longer lease in it


def ranking_submit_and_lease_next(*, assignment_id: int, annotator: AbstractBaseUser, after: int | None = None,
                                  idempotency_key: str = "", **submission: Any) -> SubmitNextResult:
    """Submit (ranking_submit, unchanged) and then lease what next-task would answer: one round trip per ranking.

    The submission commits first, in its own durable transaction; the lease is next-task's own
    (assignment_lease_next: same resume, prefetch with `after`, at most two live leases, its own
    non-durable commit), so a failed or empty lease never undoes a stored ranking. A replayed retry
    (same Idempotency-Key) gets the lease next-task would give now, which resumes the first answer's.
    Leasing needs the membership next-task needs. A removed member's submit is refused before this
    (the submitted assignment is read with a membership join, and membership_remove ends their
    leases); the project comes with that same statement, and the lease re-reads the membership in
    its own first statement, so a removal that commits between the submission and the lease gets
    NoTask "no_access" rather than an error that would hide that the ranking was stored.
    """
    submitted = ranking_submit(assignment_id=assignment_id, annotator=annotator, idempotency_key=idempotency_key,
                               read_project=True, **submission)
    project = submitted.project
    following = assignment_lease_next(project=project, annotator=annotator, after=after, member_check=True)
    return SubmitNextResult(submitted=submitted, next=following, project=None if isinstance(following, NoTask)
                            and following.code == "no_access" else project)
