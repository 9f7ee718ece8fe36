"""Demonstrations: the ideal response an annotator writes (or edits from a draft), and its review.

A demonstration task goes through the same next-task engine as a ranking task (overlap, leases,
roles, skip: annotation.services.assignment); only the submission differs. The submission keeps
ranking's guarantees: one per assignment (a one-to-one row), a retry with the same
Idempotency-Key is answered with the first result, a late one is kept while its slot is free.

Review (projects created with `review`): every demonstration starts `pending`; another member of
the project (never its author) accepts or rejects it. Only accepted demonstrations are exported
then; in a project without review every demonstration is exported (`not_required`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.errors import ApplicationError, Conflict, Forbidden, NotFound
from annotation.models import (
    Assignment,
    AssignmentStatus,
    Demonstration,
    Project,
    ReviewStatus,
    TaskType,
    WebhookEvent,
)
from annotation.services.assignment import assignment_get_for_annotator, assignment_retake_slot, held_task_type
from annotation.services.rendering import markdown_html_many, markdown_to_safe_html
from annotation.services.validation import is_int
from annotation.services.webhooks import webhook_events_emit
from annotation.sql import ranking as ranking_sql

MAX_DURATION_MS = 24 * 3600 * 1000
MAX_IDEMPOTENCY_KEY = 200
MAX_REVIEW_NOTE = 2_000
REVIEW_LEASE_SECONDS = 900
MAX_PREVIEW_CHARS = 200_000


@dataclass
class DemonstrationSubmitResult:
    demonstration: Demonstration
    replayed: bool
    late: bool


def demonstration_validate(*, text: Any, duration_ms: Any, max_chars: int) -> dict[str, list[str]]:
    """Every problem with a demonstration submission, field -> messages (empty: valid)."""
    errors: dict[str, list[str]] = {}
    if not isinstance(text, str):
        errors["text"] = ["must be a string"]
    elif not text.strip():
        errors["text"] = ["must not be empty"]
    elif len(text) > max_chars:
        errors["text"] = [f"must be at most {max_chars} characters (this one has {len(text)})"]
    if duration_ms is not None and not (is_int(duration_ms) and 0 <= duration_ms <= MAX_DURATION_MS):
        errors["duration_ms"] = [f"must be an integer number of milliseconds from 0 to {MAX_DURATION_MS}, or null"]
    return errors


@transaction.atomic
def demonstration_submit(
    *,
    assignment_id: int,
    annotator: AbstractBaseUser,
    text: Any,
    duration_ms: Any = None,
    idempotency_key: str = "",
    now: datetime | None = None,
) -> DemonstrationSubmitResult:
    """Store the lease holder's demonstration for their assignment, once (the rules of ranking_submit).

    Raises ApplicationError naming `text` (empty, too long, or this is a ranking task) or
    `duration_ms`; Conflict when already submitted (another key), skipped, or the slot was lost.
    """
    now = now or timezone.now()
    if not isinstance(idempotency_key, str) or len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise ApplicationError(
            "Invalid Idempotency-Key header.", fields={"Idempotency-Key": [f"must be at most {MAX_IDEMPOTENCY_KEY} characters"]}
        )
    assignment = assignment_get_for_annotator(assignment_id=assignment_id, annotator=annotator, lock=True)
    if held_task_type(assignment) != TaskType.DEMONSTRATION:
        raise ApplicationError(
            "This is a ranking task: submit `ranking`, not `text`.", fields={"text": ["this task is ranked, not written"]}
        )
    if assignment.status == AssignmentStatus.SUBMITTED:
        existing = Demonstration.objects.get(assignment=assignment)
        if idempotency_key and existing.idempotency_key == idempotency_key:
            return DemonstrationSubmitResult(demonstration=existing, replayed=True, late=False)
        raise Conflict(
            "This assignment was already submitted; its first demonstration is kept.",
            extra={"reason": "already_submitted", "demonstration_id": existing.pk},
        )
    project = Project.objects.only("id", "review", "max_demonstration_chars").get(pk=assignment.project_id)
    errors = demonstration_validate(text=text, duration_ms=duration_ms, max_chars=project.max_demonstration_chars)
    if errors:
        raise ApplicationError(f"Invalid submission: {', '.join(errors)}.", fields=errors)
    if assignment.status == AssignmentStatus.SKIPPED:
        raise Conflict("You skipped this task; a skipped task cannot be submitted.", extra={"reason": "already_skipped"})
    late = assignment.lease_expires_at <= now
    if assignment.status == AssignmentStatus.EXPIRED:
        assignment_retake_slot(assignment=assignment, now=now)
        late = True

    stored = Demonstration.objects.create(
        assignment=assignment,
        project_id=assignment.project_id,
        task_id=assignment.task_id,
        annotator=annotator,
        draft_id=assignment.display_order[0] if assignment.display_order else None,
        text=text,
        duration_ms=int(duration_ms) if duration_ms is not None else int((now - assignment.leased_at).total_seconds() * 1000),
        idempotency_key=idempotency_key,
        review_status=ReviewStatus.PENDING if project.review else ReviewStatus.NOT_REQUIRED,
    )
    Assignment.objects.filter(pk=assignment.pk).update(status=AssignmentStatus.SUBMITTED, finished_at=now)
    if ranking_sql.count_submission(task_id=assignment.task_id):
        webhook_events_emit(project_id=assignment.project_id, event=WebhookEvent.TASK_COMPLETED, object_id=assignment.task_id, now=now)
    return DemonstrationSubmitResult(demonstration=stored, replayed=False, late=late)


# --- review ------------------------------------------------------------------------------------


@transaction.atomic
def demonstration_review_next(*, project: Project, reviewer: AbstractBaseUser, now: datetime | None = None) -> Demonstration | None:
    """The pending demonstration this reviewer holds, or one newly claimed for them; None when none is left.

    Never one the reviewer wrote. A claim lasts REVIEW_LEASE_SECONDS, so two reviewers are not
    shown the same demonstration; an abandoned claim returns to the pool when it runs out.
    """
    now = now or timezone.now()
    if not project.review:
        raise Conflict("This project does not review demonstrations (it was created without review).",
                       extra={"reason": "not_reviewed"})
    pending = Demonstration.objects.filter(project=project, review_status=ReviewStatus.PENDING).exclude(annotator=reviewer)
    held = pending.filter(review_leased_by=reviewer, review_lease_expires_at__gt=now).order_by("id").first()
    if held is not None:
        return held
    free = pending.filter(Q(review_leased_by__isnull=True) | Q(review_lease_expires_at__lte=now) | Q(review_leased_by=reviewer))
    for candidate in free.order_by("id").values_list("id", flat=True)[:20]:
        # A conditional update claims it: a concurrent reviewer's claim makes this one match nothing.
        claimed = (
            Demonstration.objects.filter(pk=candidate, review_status=ReviewStatus.PENDING)
            .filter(Q(review_leased_by__isnull=True) | Q(review_lease_expires_at__lte=now) | Q(review_leased_by=reviewer))
            .update(review_leased_by=reviewer, review_lease_expires_at=now + timedelta(seconds=REVIEW_LEASE_SECONDS))
        )
        if claimed == 1:
            return Demonstration.objects.get(pk=candidate)
    return None


def demonstration_review_payload(*, demonstration: Demonstration) -> dict[str, Any]:
    """What the reviewer sees: the prompt and the demonstration (never its author's name)."""
    messages = [{"role": m.get("role", ""), "content": m.get("content", "")} for m in demonstration.task.prompt.messages]
    html = markdown_html_many([m["content"] for m in messages])
    for message, message_html in zip(messages, html, strict=False):
        message["content_html"] = message_html
    return {
        "id": demonstration.pk,
        "project": demonstration.project_id,
        "messages": messages,
        "text": demonstration.text,
        "text_html": markdown_to_safe_html(demonstration.text),
        "review_lease_expires_at": demonstration.review_lease_expires_at,
    }


@transaction.atomic
def demonstration_review(
    *, demonstration_id: int, project: Project, reviewer: AbstractBaseUser, accepted: Any, note: Any = "", now: datetime | None = None
) -> Demonstration:
    """Accept or reject a pending demonstration of `project`; the author may not review their own.

    A repeat of the same verdict by the same reviewer is answered like the first; any other second
    review is a Conflict (the first verdict is kept).
    """
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    if not isinstance(accepted, bool):
        errors["accepted"] = ["must be true or false"]
    if not isinstance(note, str):
        errors["note"] = ["must be a string"]
    elif len(note) > MAX_REVIEW_NOTE:
        errors["note"] = [f"must be at most {MAX_REVIEW_NOTE} characters"]
    if errors:
        raise ApplicationError(f"Invalid review: {', '.join(errors)}.", fields=errors)
    demonstration = Demonstration.objects.select_for_update().filter(pk=demonstration_id, project=project).first()
    if demonstration is None:
        raise NotFound("Demonstration not found.")
    if demonstration.annotator_id == reviewer.pk:
        raise Forbidden("You wrote this demonstration: another annotator reviews it.")
    verdict = ReviewStatus.ACCEPTED if accepted else ReviewStatus.REJECTED
    if demonstration.review_status == ReviewStatus.NOT_REQUIRED:
        raise Conflict("This project did not ask for review of this demonstration.", extra={"reason": "not_reviewed"})
    if demonstration.review_status != ReviewStatus.PENDING:
        if demonstration.reviewer_id == reviewer.pk and demonstration.review_status == verdict:
            return demonstration
        raise Conflict(f"This demonstration was already {demonstration.review_status}.", extra={"reason": "already_reviewed"})
    demonstration.review_status = verdict
    demonstration.reviewer = reviewer
    demonstration.review_note = note.strip()
    demonstration.reviewed_at = now
    demonstration.review_leased_by = None
    demonstration.review_lease_expires_at = None
    demonstration.save(update_fields=["review_status", "reviewer", "review_note", "reviewed_at", "review_leased_by",
                                      "review_lease_expires_at"])
    return demonstration


def demonstration_preview(*, text: Any) -> str:
    """The Markdown preview of a draft, rendered by the one server renderer (sanitised HTML)."""
    if not isinstance(text, str):
        raise ApplicationError("Invalid preview.", fields={"text": ["must be a string"]})
    if len(text) > MAX_PREVIEW_CHARS:
        raise ApplicationError("Invalid preview.", fields={"text": [f"must be at most {MAX_PREVIEW_CHARS} characters"]})
    return markdown_to_safe_html(text)
