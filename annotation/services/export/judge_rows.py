"""Export rows made from judge rankings and comparisons (source "judge"): tuples in COLUMNS order, every format."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from annotation.models import JudgeComparison, Prompt, Response
from annotation.services.export.options import ExportOptions
from annotation.services.export.reader import _message_list
from annotation.services.export.rows import SFT_ORIGIN_BEST_OF_N, SOURCE_JUDGE, ExportStats, sft_messages

JUDGE_ANNOTATOR = "judge"


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def judge_rows_chunk(chunk: list[tuple], options: ExportOptions, stats: ExportStats) -> list[tuple[int, list]]:
    """(prompt id, rows) per judge ranking of the chunk: (task_id, run_id, tiers, prompt_id, is_gold, created_at) rows."""
    task_ids = [row[0] for row in chunk]
    prompts = dict(Prompt.objects.filter(id__in={row[3] for row in chunk}).values_list("id", "messages"))
    ids = {rid for row in chunk for tier in row[2] for rid in tier}
    texts = {rid: (text, model) for rid, text, model in Response.objects.filter(id__in=ids).values_list("id", "text", "model_name")}
    comparisons: dict[tuple[int, int], list] = defaultdict(list)
    if options.format == "pairs":
        wanted = {(row[0], row[1]) for row in chunk}
        for values in JudgeComparison.objects.filter(task_id__in=task_ids, failed=False, orders_agree=True).values_list(
                "task_id", "run_id", "response_a_id", "response_b_id", "prob_a"):
            if (values[0], values[1]) in wanted:
                comparisons[(values[0], values[1])].append(values[2:])
    out = []
    for task_id, run_id, tiers, prompt_id, is_gold, created_at in chunk:
        prompt = _message_list(prompts.get(prompt_id))
        rows = _rows(options, task_id, run_id, tiers, prompt_id, is_gold, created_at, prompt, texts, comparisons)
        if rows:
            stats.tasks_kept += 1
        out.append((prompt_id, rows))
    return out


def _rows(options: ExportOptions, task_id: int, run_id: int, tiers: list[list[int]], prompt_id: int, is_gold: bool,
          created_at: Any, prompt: list, texts: dict, comparisons: dict) -> list[tuple]:
    fmt = options.format
    if fmt == "pairs":
        rows = []
        for a, b, prob_a in sorted(comparisons.get((task_id, run_id), [])):
            if prob_a == 0.5:
                continue
            chosen, rejected, margin = (a, b, prob_a) if prob_a > 0.5 else (b, a, 1 - prob_a)
            rows.append((prompt, _assistant(texts[chosen][0]), _assistant(texts[rejected][0]), round(margin, 6), prompt_id,
                         chosen, rejected, None, None, None, SOURCE_JUDGE))
        return rows
    if fmt == "unpaired":
        if len(tiers) < 2:
            return []
        top = min(options.desirable_tiers, len(tiers) - 1)
        bottom = min(options.undesirable_tiers, len(tiers) - top)
        labelled = [(rid, True) for tier in tiers[:top] for rid in tier]
        labelled += [(rid, False) for tier in tiers[len(tiers) - bottom :] for rid in tier]
        return [(prompt, _assistant(texts[rid][0]), label, prompt_id, rid, task_id, SOURCE_JUDGE) for rid, label in labelled]
    if fmt == "sft":
        if len(tiers[0]) != 1:
            return []
        best = tiers[0][0]
        return [(sft_messages(prompt, texts[best][0]), prompt_id, best, task_id, SFT_ORIGIN_BEST_OF_N, None, None, None, SOURCE_JUDGE)]
    responses = [{"id": rid, "content": texts[rid][0], "model": texts[rid][1], "generation": None}
                 for rid in sorted(rid for tier in tiers for rid in tier)]
    annotation = {"annotator": JUDGE_ANNOTATOR, "tiers": tiers, "flags": [], "rating": None, "rationale": f"judge run {run_id}",
                  "display_order": [], "duration_seconds": None, "submitted_at": created_at.isoformat()}
    return [(prompt, responses, [annotation], tiers, None, prompt_id, task_id, is_gold, SOURCE_JUDGE)]
