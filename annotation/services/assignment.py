"""The next-task engine: leasing ranking tasks to annotators, exactly, under concurrency.

Rules (all of them live here):
- An annotator with a live lease in the project gets it back (resume), whatever tab asks. The page
  may prefetch one more (`after=`): at most two live leases per annotator.
- Otherwise they get the open task they were never assigned whose submitted plus live leases
  (`active_count`) are below what it may get now (`target_overlap`: the overlap, or with adaptive
  overlap from min_overlap up to the overlap, raised by the submission; annotation.services.ranking):
  highest priority first, then oldest.
- Gold tasks (a known ranking) are drawn with probability `project.gold_rate`; each annotator
  sees a gold task at most once, and gold tasks are not limited by the overlap (they measure every
  annotator). They never count towards "left in the project".
- Leases expire after `project.lease_seconds`; the slot returns to the pool. Expiry is lazy (a
  bounded sweep at claim time: every few seconds per process, and always before answering "no
  task") and periodic (workers.tasks.assignment.expire_leases).
- Each assignment stores its own shuffled display order and opaque response ids ("r7") drawn at
  random per assignment, so neither position nor id says anything about the model.

Counters (`RankingTask.active_count`, `submitted_count`, `is_complete`) change only here and in
annotation.services.ranking, always in the same transaction as the assignment rows they count.

Concurrency. On PostgreSQL the claim is one statement: an UPDATE of the task row picked by
`SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent annotators neither wait on each other nor
over-assign. A transaction-scoped advisory lock per (project, annotator) serialises one person's
parallel tabs, which therefore all resume the same lease. A tab that finds the lock taken does not
wait when that person already holds a committed live lease answering its request: it gets that
lease at once (the one it would resume after waiting), so parallel tabs cost no waiting thread. On SQLite the first statement of the
transaction is a write, which takes SQLite's single write lock, so claims are serialised; the
claim itself is a conditional UPDATE whose row count is checked. In both cases the unique
(task, annotator) constraint is the last line of defence.

Lock order, to stay deadlock-free: assignment rows before task rows (submit, skip, expiry), task
rows in id order (expiry); a claim runs in a transaction holding no other task lock, locks one
task row and then only inserts.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.errors import ApplicationError, Conflict, NotFound
from annotation.models import Assignment, AssignmentStatus, Membership, Project, Prompt, RankingTask, ResponseFlag, TaskType, WebhookEvent
from annotation.services.agreement_cache import agreement_schedule_refresh
from annotation.services.consensus import tiers_problems
from annotation.services.per_process import AtMostEvery
from annotation.services.prerender import shown_html
from annotation.services.rendering import markdown_html_many
from annotation.services.task_agreement import adaptive_decided, task_rankings
from annotation.services.webhooks import webhook_events_emit
from annotation.sql import assignment as sql
from annotation.sql import postgres_statements

EXPIRY_SWEEP_BATCH = 200
SWEEP_EVERY_SECONDS = 5.0
MAX_LIVE_LEASES = 2  # the task shown and the one prefetched
_rng = random.SystemRandom()


@dataclass
class NoTask:
    """Why there is nothing to lease: `code` is stable, `message` is for people."""

    code: str  # "all_done" | "nothing_for_you"
    message: str


def _annotator_lock_key(project_id: int, annotator_id: int) -> int:
    digest = hashlib.blake2b(f"assignment:{project_id}:{annotator_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _serialize_annotator(*, project: Project, annotator: AbstractBaseUser, wait: bool = True,
                         member_check: bool = False, done_since: datetime | None = None) -> sql.Serialized:
    """Make this transaction the only one leasing for this annotator in this project.

    `wait=False` (PostgreSQL): only try; `held` is False when another of their sessions holds the
    lock now. `member_check`: `member` says whether they are still a member of the project (else
    True). `done_since` (PostgreSQL): `done` is their done_counts since then, read in the same
    statement for the payload's progress (else None).
    """
    if postgres_statements():
        # Leases commit without waiting for the WAL flush. A database crash can forget the last
        # fraction of a second of leases, whole transactions only (row and counter together);
        # submissions stay durable, and their synchronous commit flushes every lease committed before them.
        done_of = None if done_since is None else (done_since, project.pk, annotator.pk, AssignmentStatus.SUBMITTED.value)
        return sql.serialize_annotator(lock_key=_annotator_lock_key(project.pk, annotator.pk), wait=wait,
                                       member_of=(project.pk, annotator.pk) if member_check else None, done_of=done_of)
    else:
        # SQLite: a write as the first statement takes the database's write lock for the whole
        # transaction (a deferred transaction that reads first could fail to upgrade later).
        Project.objects.filter(pk=project.pk).update(lease_seconds=F("lease_seconds"))
        member = not member_check or Membership.objects.filter(project=project, user=annotator).exists()
        return sql.Serialized(held=True, member=member, done=None)


def no_access() -> NoTask:
    """Why a lease was not given to someone who is no longer a member of the project."""
    return NoTask("no_access", "You are no longer a member of this project.")


def assignment_opaque_ids(*, response_ids: list[int]) -> tuple[list[int], dict[str, int]]:
    """A shuffled display order and fresh opaque ids ("r7") for one assignment."""
    order = list(response_ids)
    _rng.shuffle(order)
    numbers = _rng.sample(range(1, max(100, 10 * len(order))), len(order))
    return order, {f"r{n}": response_id for n, response_id in zip(numbers, order, strict=True)}


def assignment_display(*, assignment: Assignment) -> list[tuple[str, str, int]]:
    """(opaque id, label, response id) in display order: labels A, B, C... follow the order shown."""
    by_response = {response_id: opaque for opaque, response_id in assignment.opaque_ids.items()}
    return [(by_response[rid], _label(i), rid) for i, rid in enumerate(assignment.display_order)]


def _label(index: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[index] if index < len(letters) else f"{letters[index // 26 - 1]}{letters[index % 26]}"


def _start_of_day(now: datetime) -> datetime:
    """The UTC day's start: annotator_progress's "done today" counts from it."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _lease_until(project: Project, now: datetime) -> datetime:
    return now + timedelta(seconds=project.lease_seconds)


def held_allow_ties(assignment: Assignment) -> bool:
    """The project's allow_ties, read with the assignment by assignment_get_for_annotator."""
    value = getattr(assignment, "held_allow_ties", None)
    return bool(assignment.project.allow_ties if value is None else value)


def _held_lease_until(assignment: Assignment, now: datetime) -> datetime:
    seconds = getattr(assignment, "held_lease_seconds", None)
    return now + timedelta(seconds=assignment.project.lease_seconds if seconds is None else seconds)


def held_task_type(assignment: Assignment) -> str:
    """The assignment's task type (ranking or demonstration), read with it by assignment_get_for_annotator."""
    value = getattr(assignment, "held_task_type", None)
    return str(assignment.task.task_type if value is None else value)


def _held_task_is_gold(assignment: Assignment) -> bool:
    value = getattr(assignment, "held_task_is_gold", None)
    return bool(assignment.task.is_gold if value is None else value)


# --- expiry ------------------------------------------------------------------------------------


def _release_slots(task_ids: list[int]) -> None:
    """Give one slot back per occurrence of a task id (its lease ended without a submission)."""
    if not task_ids:
        return
    counts: dict[int, int] = {}
    for task_id in task_ids:
        counts[task_id] = counts.get(task_id, 0) + 1
    # Sorted, one row at a time: every path locks task rows in id order.
    for task_id in sorted(counts):
        RankingTask.objects.filter(pk=task_id).update(active_count=F("active_count") - counts[task_id])


def assignments_expire(
    *, project_id: int | None = None, now: datetime | None = None, limit: int = EXPIRY_SWEEP_BATCH, exclude_annotator_id: int | None = None
) -> int:
    """Expire up to `limit` leases past their expiry; their slots return to the pool.

    Rows being handled by another transaction are skipped (SKIP LOCKED), so concurrent sweeps
    never wait on each other nor expire one lease twice. Call inside a transaction.
    """
    now = now or timezone.now()
    qs = Assignment.objects.filter(status=AssignmentStatus.LEASED, lease_expires_at__lt=now)
    if project_id is not None:
        qs = qs.filter(project_id=project_id)
    if exclude_annotator_id is not None:
        qs = qs.exclude(annotator_id=exclude_annotator_id)
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True)
    rows = list(qs.order_by("lease_expires_at").values_list("id", "task_id")[:limit])
    if not rows:
        return 0
    # The status guard makes a second expiry of the same row (SQLite, no SKIP LOCKED) a no-op.
    updated = list(
        Assignment.objects.filter(id__in=[r[0] for r in rows], status=AssignmentStatus.LEASED).values_list("id", "task_id")
    )
    Assignment.objects.filter(id__in=[r[0] for r in updated]).update(status=AssignmentStatus.EXPIRED, finished_at=now)
    _release_slots([r[1] for r in updated])
    return len(updated)


def assignments_end_for_annotator(*, project_id: int, annotator_id: int, now: datetime | None = None) -> int:
    """End every live lease of one annotator in one project (they were removed): each becomes
    EXPIRED and its slot returns to the pool. Call inside the removal's transaction."""
    now = now or timezone.now()
    live = Assignment.objects.select_for_update().filter(
        project_id=project_id, annotator_id=annotator_id, status=AssignmentStatus.LEASED
    )
    rows = list(live.order_by("id").values_list("id", "task_id"))
    Assignment.objects.filter(id__in=[r[0] for r in rows]).update(status=AssignmentStatus.EXPIRED, finished_at=now)
    _release_slots([r[1] for r in rows])
    return len(rows)


def assignments_expire_all(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Expire every overdue lease in every project (the periodic task), in batches."""
    total = 0
    while True:
        with transaction.atomic():
            n = assignments_expire(now=now, limit=batch)
        total += n
        if n < batch:
            return total


# --- claiming ----------------------------------------------------------------------------------

# The rankings a task may get at this moment: its target_overlap (adaptive overlap raises it one at a
# time, from the project's min_overlap up to overlap), or the overlap where it has none.
TASK_ALLOWED = Coalesce(F("target_overlap"), F("overlap"))

Shown = sql.Shown


def _claim_generic(*, project: Project, annotator_id: int, gold: bool) -> int | None:
    taken = Assignment.objects.filter(annotator_id=annotator_id, project=project).values("task_id")
    candidates = (
        RankingTask.objects.filter(project=project, is_complete=False, is_gold=gold)
        .exclude(id__in=taken)
        .order_by("-priority", "id")
    )
    if not gold:
        candidates = candidates.filter(active_count__lt=TASK_ALLOWED)
    for task_id in candidates.values_list("id", flat=True)[:50]:
        guard = RankingTask.objects.filter(pk=task_id, is_complete=False)
        if not gold:
            guard = guard.filter(active_count__lt=TASK_ALLOWED)
        if guard.update(active_count=F("active_count") + 1) == 1:
            return task_id
    return None


def _claim(*, project: Project, annotator_id: int, gold: bool) -> tuple[int, Shown | None] | None:
    """The claimed task's id and, on PostgreSQL, what it shows (read in the same statement)."""
    if postgres_statements():
        return sql.claim_and_show(project_id=project.pk, annotator_id=annotator_id, gold=gold)
    task_id = _claim_generic(project=project, annotator_id=annotator_id, gold=gold)
    return None if task_id is None else (task_id, None)


def _claim_any(*, project: Project, annotator_id: int) -> tuple[int, Shown | None] | None:
    want_gold = project.gold_rate > 0 and _rng.random() < project.gold_rate
    claimed = _claim(project=project, annotator_id=annotator_id, gold=True) if want_gold else None
    if claimed is None:
        claimed = _claim(project=project, annotator_id=annotator_id, gold=False)
    return claimed


# Sweeping at every claim would add a query to the hottest path for nothing most of the time; a
# claim that finds no task always sweeps and retries, so a freed slot is never missed.
_sweep_due = AtMostEvery(SWEEP_EVERY_SECONDS)


def _create_assignment(
    *, project: Project, annotator: AbstractBaseUser, task_id: int, now: datetime, shown: Shown | None = None
) -> Assignment:
    rows = shown or sql.shown(task_id=task_id)
    order, opaque = assignment_opaque_ids(response_ids=sorted(row.response_id for row in rows))
    assignment = Assignment(
        task_id=task_id,
        project=project,
        annotator=annotator,
        status=AssignmentStatus.LEASED,
        display_order=order,
        opaque_ids=opaque,
        leased_at=now,
        lease_expires_at=_lease_until(project, now),
    )
    sql.insert(assignment)  # a raw INSERT: Model.save() costs several times the statement on this path
    assignment._shown = rows  # read once here, reused by assignment_payload
    return assignment


def assignment_lease_next(
    *, project: Project, annotator: AbstractBaseUser, after: int | None = None, now: datetime | None = None,
    member_check: bool = False,
) -> Assignment | NoTask:
    """The annotator's current assignment in the project: their live lease, or a newly leased task.

    Args:
        after: the id of the assignment the caller is working on, to prefetch the one after it:
            their other live lease if any, else a newly leased task. An annotator holds at most
            MAX_LIVE_LEASES leases (the one shown and the one prefetched).

    Returns NoTask (with the reason) when nothing can be leased to them right now.

    `member_check`: the caller's membership is read by the lease's own first statement (a caller
    that has not just read it: submit?next, whose project came with the submitted assignment); a
    non-member gets NoTask "no_access". Superusers need no membership, as project_get_for_user says.

    Overdue leases are swept in a transaction of their own, before the claim: a claim that may
    wait for a row lock then never holds other task locks, so the two cannot deadlock.
    """
    now = now or timezone.now()
    swept = _sweep_due.due(project.pk)
    if swept:
        _sweep(project=project, annotator=annotator, now=now)
    member_check = member_check and not getattr(annotator, "is_superuser", False)
    result = _lease_next(project=project, annotator=annotator, after=after, now=now, member_check=member_check)
    if isinstance(result, NoTask) and result.code != "no_access" and not swept and _sweep(project=project, annotator=annotator, now=now):
        # Expired leases were all that was left: their slots are free now, try once more.
        result = _lease_next(project=project, annotator=annotator, after=after, now=now, member_check=member_check)
    return result


@transaction.atomic
def _sweep(*, project: Project, annotator: AbstractBaseUser, now: datetime) -> int:
    # The caller's own overdue lease is not expired here: they resume it.
    return assignments_expire(project_id=project.pk, now=now, exclude_annotator_id=annotator.pk)


@transaction.atomic
def _lease_next(*, project: Project, annotator: AbstractBaseUser, after: int | None, now: datetime,
                member_check: bool = False) -> Assignment | NoTask:
    serialized = _serialize_annotator(project=project, annotator=annotator, wait=False, member_check=member_check,
                                      done_since=_start_of_day(now))
    if not serialized.member:
        return no_access()
    result = _lease_held(project=project, annotator=annotator, after=after, now=now, held=serialized.held)
    if not isinstance(result, NoTask):
        result.held_done_counts = serialized.done  # the payload's progress, read by the lock's statement
    return result


def _lease_held(*, project: Project, annotator: AbstractBaseUser, after: int | None, now: datetime, held: bool) -> Assignment | NoTask:
    live_limit = MAX_LIVE_LEASES + 1
    if not held:
        # Another session of this annotator (a parallel tab) is leasing right now. If they already
        # hold a committed live lease that answers this request, that lease is what this one would
        # resume after waiting: share it now instead of keeping a server thread waiting on the lock.
        live = sql.live(project_id=project.pk, annotator_id=annotator.pk, status=AssignmentStatus.LEASED.value, limit=live_limit)
        shared = [a for a in live if (after is None or a.pk != int(after)) and a.lease_expires_at > now]
        if shared:
            shared[0].project = project
            return shared[0]
        _serialize_annotator(project=project, annotator=annotator)  # nothing to share yet: wait for their claim (milliseconds)

    live = sql.live(project_id=project.pk, annotator_id=annotator.pk, status=AssignmentStatus.LEASED.value, limit=live_limit)
    candidates = [a for a in live if after is None or a.pk != int(after)]
    if candidates or len(live) >= MAX_LIVE_LEASES:
        current = candidates[0] if candidates else live[0]
        current.project = project  # already at hand: no lazy query when the payload reads it
        # Still LEASED means its slot is still counted, even if the clock ran out: renew it.
        if current.lease_expires_at <= now:
            current.lease_expires_at = _lease_until(project, now)
            current.save(update_fields=["lease_expires_at"])
        return current

    claimed = _claim_any(project=project, annotator_id=annotator.pk)
    if claimed is None:
        return _why_nothing(project=project)
    task_id, shown = claimed
    return _create_assignment(project=project, annotator=annotator, task_id=task_id, now=now, shown=shown)


def _why_nothing(*, project: Project) -> NoTask:
    if not RankingTask.objects.filter(project=project, is_complete=False, is_gold=False).exists():
        return NoTask("all_done", "Every task in this project has all the rankings it needs. Thank you!")
    return NoTask(
        "nothing_for_you",
        "No task is open for you right now: the remaining ones are being ranked by others or you ranked them already. "
        "Leases that run out return to the pool, so try again later.",
    )


# --- the holder's operations -------------------------------------------------------------------


MAX_ID = 2**63 - 1


def assignment_get_for_annotator(*, assignment_id: int, annotator: AbstractBaseUser, lock: bool = False,
                                 with_project: bool = False, lock_task: bool = False) -> Assignment:
    """The caller's own assignment; anyone else's (any project, any tenant) is NotFound.

    Read in one raw statement with the few project and task fields the holder's operations need
    (held_allow_ties, held_lease_seconds, held_task_is_gold): this is the first query of every
    submit, where the ORM's select_related + FOR UPDATE OF compiled slower than it ran.
    `with_project`: the whole project row too, as `assignment.project`, in the same statement.
    `lock_task` (with `lock`): the task row is locked too, after the assignment row (the lock order).
    """
    if not str(assignment_id).isdigit() or int(assignment_id) > MAX_ID:
        raise NotFound("Assignment not found.")
    found = sql.held(assignment_id=int(assignment_id), annotator_id=annotator.pk, lock=lock, with_project=with_project,
                      lock_task=lock_task)
    if found is None:
        raise NotFound("Assignment not found.")
    return found


def assignment_retake_slot(*, assignment: Assignment, now: datetime) -> None:
    """Make an EXPIRED assignment live again if its task still has a free slot, else Conflict.

    Call while holding the assignment row lock (select_for_update).
    """
    guard = RankingTask.objects.filter(pk=assignment.task_id)
    if not _held_task_is_gold(assignment):
        guard = guard.filter(active_count__lt=TASK_ALLOWED)
    if guard.update(active_count=F("active_count") + 1) != 1:
        raise Conflict(
            "Your lease on this task ran out and its place was given to another annotator; your answer was not stored.",
            extra={"reason": "lease_lost"},
        )
    assignment.status = AssignmentStatus.LEASED
    assignment.finished_at = None
    assignment.lease_expires_at = _held_lease_until(assignment, now)
    assignment.save(update_fields=["status", "finished_at", "lease_expires_at"])


def _require_live(*, assignment: Assignment, now: datetime) -> None:
    if assignment.status == AssignmentStatus.EXPIRED:
        assignment_retake_slot(assignment=assignment, now=now)
    elif assignment.status != AssignmentStatus.LEASED:
        raise Conflict(f"This assignment is already {assignment.status}.", extra={"reason": f"already_{assignment.status}"})


@transaction.atomic
def assignment_heartbeat(*, assignment_id: int, annotator: AbstractBaseUser, now: datetime | None = None) -> Assignment:
    """Extend the caller's lease by the project's lease time (the page calls it while open)."""
    now = now or timezone.now()
    assignment = assignment_get_for_annotator(assignment_id=assignment_id, annotator=annotator, lock=True)
    _require_live(assignment=assignment, now=now)
    assignment.lease_expires_at = _held_lease_until(assignment, now)
    assignment.save(update_fields=["lease_expires_at"])
    return assignment


MAX_SKIP_REASON = 500


@transaction.atomic
def assignment_skip(*, assignment_id: int, annotator: AbstractBaseUser, reason: str = "", now: datetime | None = None) -> Assignment:
    """Give the task back: the slot returns to the pool and this annotator never gets it again."""
    now = now or timezone.now()
    if not isinstance(reason, str):
        raise ApplicationError("Invalid skip.", fields={"reason": ["must be a string"]})
    if len(reason) > MAX_SKIP_REASON:
        raise ApplicationError("Invalid skip.", fields={"reason": [f"must be at most {MAX_SKIP_REASON} characters"]})
    assignment = assignment_get_for_annotator(assignment_id=assignment_id, annotator=annotator, lock=True)
    if assignment.status == AssignmentStatus.SKIPPED:
        return assignment  # a retried skip is answered like the first
    if assignment.status == AssignmentStatus.SUBMITTED:
        raise Conflict("This assignment was already submitted; it cannot be skipped.", extra={"reason": "already_submitted"})
    if assignment.status == AssignmentStatus.LEASED:
        _release_slots([assignment.task_id])
    assignment.status = AssignmentStatus.SKIPPED
    assignment.skip_reason = reason.strip()
    assignment.finished_at = now
    assignment.save(update_fields=["status", "skip_reason", "finished_at"])
    transaction.on_commit(partial(agreement_schedule_refresh, project_id=assignment.project_id))
    return assignment


# --- gold tasks --------------------------------------------------------------------------------


def unmarked_gold_complete(*, task: RankingTask, project: Project) -> bool:
    """Whether a task no longer gold has the rankings it needs, by the adaptive rule (the fixed one
    when min_overlap = overlap); if not, its target_overlap lets one more annotator in (set on `task`)."""
    allowed = task.target_overlap if task.target_overlap is not None else task.overlap
    if task.submitted_count >= task.overlap:
        return True
    if task.submitted_count >= allowed and adaptive_decided(rule=project.adaptive_rule, target=project.agreement_target,
                                                            rankings=task_rankings(task_id=task.pk), agreement=task.agreement):
        return True
    if task.target_overlap is not None:
        task.target_overlap = min(task.overlap, max(task.target_overlap, task.submitted_count + 1))
    return False


@transaction.atomic
def task_set_gold(*, task: RankingTask, gold_ranking: list[list[int]] | None) -> RankingTask:
    """Mark a task gold with its known ranking (tiers of the task's response ids), or unmark (None)."""
    task = RankingTask.objects.select_for_update().get(pk=task.pk)
    if task.task_type == TaskType.DEMONSTRATION:
        raise ApplicationError("A demonstration task is written, not ranked: it cannot be a gold task.",
                               fields={"gold_ranking": ["not for a demonstration task"]})
    if gold_ranking is None:
        task.is_gold = False
        task.gold_ranking = None
        task.is_complete = unmarked_gold_complete(task=task, project=task.project)
        task.save(update_fields=["is_gold", "gold_ranking", "is_complete", "target_overlap"])
        if task.is_complete:  # a former gold task that already has its rankings completes now
            webhook_events_emit(project_id=task.project_id, event=WebhookEvent.TASK_COMPLETED, object_id=task.pk)
        return task
    response_ids = set(task.responses.values_list("id", flat=True))
    problems = tiers_problems(tiers=gold_ranking, allowed=response_ids, allow_ties=True)
    if problems:
        raise ApplicationError("Invalid gold ranking.", fields={"gold_ranking": problems})
    task.is_gold = True
    task.gold_ranking = [[int(x) for x in tier] for tier in gold_ranking]
    task.is_complete = False  # gold tasks stay open: every annotator may get them once
    task.save(update_fields=["is_gold", "gold_ranking", "is_complete"])
    return task


# --- selectors for the annotator's view --------------------------------------------------------

LEFT_CACHE_SECONDS = 10


def assignment_payload(*, assignment: Assignment) -> dict[str, Any]:
    """What the annotator sees: the prompt's messages and the responses, blinded, in display order.

    Never includes model names, generation settings, response ids or whether the task is gold.
    """
    # A ranking project's tasks are all ranking tasks: no query to tell (its hot path stays as it was).
    if assignment.project.task_type != TaskType.RANKING:
        task_type = RankingTask.objects.filter(pk=assignment.task_id).values_list("task_type", flat=True).first()
        if task_type == TaskType.DEMONSTRATION:
            return _demonstration_payload(assignment=assignment)
    # One query: the responses with their prompt's messages (the same prompt on every row).
    rows = getattr(assignment, "_shown", None) or sql.shown(task_id=assignment.task_id)
    texts = {row.response_id: row.text for row in rows}
    messages = [{"role": m.get("role", ""), "content": m.get("content", "")} for m in rows[0].messages]
    shown = assignment_display(assignment=assignment)
    # Markdown as sanitised HTML beside the raw text: rendered ahead of time, else here.
    turns_html, html = shown_html(project_id=assignment.project_id, rows=rows, messages=messages)
    for message, message_html in zip(messages, turns_html, strict=True):
        message["content_html"] = message_html
    return {
        "id": assignment.pk,
        "type": TaskType.RANKING.value,
        "project": assignment.project_id,
        "messages": messages,
        "responses": [
            {"id": opaque, "label": label, "content": texts[response_id], "content_html": html[response_id]}
            for opaque, label, response_id in shown
        ],
        "lease_expires_at": assignment.lease_expires_at,
        "allow_ties": assignment.project.allow_ties,
        "flags": list(ResponseFlag.values),
    }




def _demonstration_payload(*, assignment: Assignment) -> dict[str, Any]:
    """A demonstration task: the prompt, and the draft to edit when the prompt came with a response.

    Blinded like a ranking task: the draft's text only, never its model or id.
    """
    rows = getattr(assignment, "_shown", None) or sql.shown(task_id=assignment.task_id)
    if rows:
        source = rows[0].messages
    else:  # no draft: the prompt's messages alone
        source = Prompt.objects.filter(tasks__id=assignment.task_id).values_list("messages", flat=True).first() or []
    messages = [{"role": m.get("role", ""), "content": m.get("content", "")} for m in source]
    draft_text = rows[0].text if rows else None
    html = markdown_html_many([m["content"] for m in messages] + ([draft_text] if draft_text is not None else []))
    for message, message_html in zip(messages, html, strict=False):
        message["content_html"] = message_html
    return {
        "id": assignment.pk,
        "type": TaskType.DEMONSTRATION.value,
        "project": assignment.project_id,
        "messages": messages,
        "responses": [],
        "draft": None if draft_text is None else {"content": draft_text, "content_html": html[len(messages)]},
        "max_chars": assignment.project.max_demonstration_chars,
        "lease_expires_at": assignment.lease_expires_at,
        "allow_ties": False,
        "flags": [],
    }


def annotator_progress(*, project: Project, annotator: AbstractBaseUser, now: datetime | None = None,
                       assignment: Assignment | None = None) -> dict[str, int]:
    """Done today (by this annotator, UTC day), done in total, and tasks left in the project.

    `assignment`: the one just leased to them (assignment_lease_next), whose lease already counted these.

    "Left" (open, non-gold tasks) is cached for a few seconds: counting 100k rows on every
    request would cost more than the claim itself.
    """
    from django.core.cache import cache

    now = now or timezone.now()
    # Raw SQL on the hot path: the same query through the ORM costs more to compile than to run. A
    # lease reads it in its first statement (held_done_counts), for the payload of what it leased.
    counted = getattr(assignment, "held_done_counts", None) if assignment is not None else None
    total, today = counted or sql.done_counts(project_id=project.pk, annotator_id=annotator.pk,
                                              status=AssignmentStatus.SUBMITTED.value, since=_start_of_day(now))
    mine = {"total": total, "today": today}
    key = f"assignment:left:{project.pk}"
    left = cache.get(key)
    if left is None:
        left = RankingTask.objects.filter(project=project, is_complete=False, is_gold=False).count()
        cache.set(key, left, LEFT_CACHE_SECONDS)
    return {
        "done_today": mine["today"],
        "done_total": mine["total"],
        "left_in_project": left,
    }
