"""Row sources: where an export's rows come from, one unit (a task) at a time, in prompt order.

A source yields batches of (prompt_id, rows) (any iterable, consumed once) with rows in the
format's COLUMNS order (tuples, or finished JSONL lines), and counts what it kept and dropped in
ExportStats. export_write splits and writes whatever its sources give, so the writers never
depend on where rows come from.

Every format reads the project's ranking tasks (RankingTaskSource), except sft on a demonstration
project, which reads the demonstrations annotators wrote (DemonstrationSource, origin
"demonstration"): every one when the project does not review, only accepted ones when it does.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from django.db.models import Q

from annotation.models import Demonstration, Project, ReviewStatus, TaskType
from annotation.services.export.options import ExportOptions
from annotation.services.export.reader import in_background, task_data_iter, task_queryset
from annotation.services.export.rows import SFT_ORIGIN_DEMONSTRATION, SOURCE_HUMAN, ExportStats, RowBuilder, sft_line, sft_messages
from annotation.services.ranking_filter import RankingFilter
from annotation.services.reliability import consensus_weights

Batch = Iterable[tuple[int, list]]  # (prompt id, that unit's rows), one entry per unit of progress


class RowSource(Protocol):
    def total(self) -> int:
        """Units (tasks) this source will go through: the progress bar's total."""
        ...

    def batches(self, stats: ExportStats) -> Iterator[Batch]:
        """Its rows, a batch at a time, in prompt order (a prompt's units adjacent)."""
        ...


class RankingTaskSource:
    """Rows from the project's ranking tasks: every format (pairs, unpaired, rankings, sft best-of-n)."""

    def __init__(self, *, project: Project, options: ExportOptions, ranking_filter: RankingFilter) -> None:
        self.project, self.options, self.ranking_filter = project, options, ranking_filter
        self.weights = consensus_weights(project=project)
        self.builder = RowBuilder(options, self.weights)

    def total(self) -> int:
        return task_queryset(self.project, self.options).count()

    def batches(self, stats: ExportStats) -> Iterator[Batch]:
        builder = self.builder

        def read() -> Iterator:
            return task_data_iter(self.project, self.options, self.ranking_filter, builder.runs,
                                  annotators=self.weights is not None)

        for chunk in in_background(read):
            stats.tasks_seen += len(chunk)
            # A generator, not a list: one task's rows exist at a time, not a whole chunk's (about
            # 8 MB of finished lines per 2,000 tasks of pairs).
            yield ((task.prompt_id, builder.rows(task, stats)) for task in chunk)


class DemonstrationSource:
    """sft rows from a demonstration project's demonstrations: the prompt's messages, then the text as the assistant turn.

    Only accepted ones when the project reviews (pending and rejected ones are counted, not
    exported); the ranking filter applies to when and by whom they were written.
    """

    CHUNK = 1000

    def __init__(self, *, project: Project, options: ExportOptions, ranking_filter: RankingFilter) -> None:
        self.project, self.options, self.ranking_filter = project, options, ranking_filter

    def _queryset(self):
        rows = Demonstration.objects.filter(project=self.project)
        flt = self.ranking_filter
        if flt.since is not None:
            rows = rows.filter(created_at__gte=flt.since)
        if flt.until is not None:
            rows = rows.filter(created_at__lt=flt.until)
        if flt.annotator_ids is not None:
            rows = rows.filter(annotator_id__in=flt.annotator_ids)
        return rows

    def total(self) -> int:
        return self._queryset().count()

    def policy(self) -> dict:
        """What the manifest says of these rows."""
        return {
            "sources": [SFT_ORIGIN_DEMONSTRATION],
            "demonstration": "each demonstration an annotator wrote as the assistant turn, one row each",
            "review": "accepted ones only (pending and rejected counted in demonstrations_not_accepted)"
            if self.project.review else "not reviewed: every demonstration",
        }

    def batches(self, stats: ExportStats) -> Iterator[Batch]:
        wanted = ReviewStatus.ACCEPTED if self.project.review else ReviewStatus.NOT_REQUIRED
        jsonl = self.options.file_format == "jsonl"
        last = (0, 0)
        while True:
            # Keyset pages in (prompt, id) order: a prompt's demonstrations stay adjacent.
            page = list(
                self._queryset()
                .filter(Q(task__prompt_id__gt=last[0]) | Q(task__prompt_id=last[0], id__gt=last[1]))
                .order_by("task__prompt_id", "id")
                .values_list("id", "task_id", "task__prompt_id", "task__prompt__messages", "text", "review_status")[: self.CHUNK]
            )
            if not page:
                return
            batch: Batch = []
            for demo_id, task_id, prompt_id, messages, text, review_status in page:
                stats.tasks_seen += 1
                if review_status != wanted:
                    stats.demonstrations_not_accepted += 1
                    batch.append((prompt_id, []))
                    continue
                stats.tasks_kept += 1
                prompt = [{"role": m.get("role", ""), "content": m.get("content", "")} for m in messages]
                row = (sft_messages(prompt, text), prompt_id, None, task_id, SFT_ORIGIN_DEMONSTRATION, None, None, demo_id, SOURCE_HUMAN)
                batch.append((prompt_id, [sft_line(row)] if jsonl else [row]))
            last = (page[-1][2], page[-1][0])
            yield batch


class JudgeRankingSource:
    """Rows from the judge's rankings (source "judge"): each task's ranking by the latest judge run that ranked it.

    pairs: one row per comparison whose two orders agreed, chosen the response the judge preferred,
    `margin` its soft preference (the probability, averaged over both orders, that chosen is
    better), votes and agreement null. unpaired, rankings, sft: from the judge ranking's tiers as
    the human rows use the consensus (the rankings row's one annotation is "judge"). The
    min_votes / min_agreement / annotator filters are about people and leave judge rows alone.
    """

    CHUNK = 500

    def __init__(self, *, project: Project, options: ExportOptions) -> None:
        self.project, self.options = project, options

    def _latest(self):
        from annotation.models import JudgeRanking

        rankings = JudgeRanking.objects.filter(project=self.project)
        if self.options.exclude_gold:
            rankings = rankings.filter(task__is_gold=False)
        # The latest run's ranking of each task (PostgreSQL DISTINCT ON would do it in SQL; this stays portable).
        latest: dict[int, tuple] = {}
        for row in rankings.order_by("task__prompt_id", "task_id", "-run_id").values_list(
                "task_id", "run_id", "tiers", "task__prompt_id", "task__is_gold", "created_at"):
            latest.setdefault(row[0], row)
        return list(latest.values())

    def total(self) -> int:
        return len(self._latest())

    def batches(self, stats: ExportStats) -> Iterator[Batch]:
        from annotation.services.export.judge_rows import judge_rows_chunk

        rows = self._latest()
        for start in range(0, len(rows), self.CHUNK):
            chunk = rows[start : start + self.CHUNK]
            stats.tasks_seen += len(chunk)
            yield judge_rows_chunk(chunk, self.options, stats)


def sources_for(*, project: Project, options: ExportOptions, ranking_filter: RankingFilter) -> list[RowSource]:
    """The row sources of an export: a demonstration project's sft export reads its demonstrations;
    otherwise people's rankings, the judge's, or both (options.source)."""
    if options.format == "sft" and project.task_type == TaskType.DEMONSTRATION:
        return [DemonstrationSource(project=project, options=options, ranking_filter=ranking_filter)]
    sources: list[RowSource] = []
    if options.source in ("human", "all"):
        sources.append(RankingTaskSource(project=project, options=options, ranking_filter=ranking_filter))
    if options.source in ("judge", "all"):
        sources.append(JudgeRankingSource(project=project, options=options))
    return sources
