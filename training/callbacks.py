"""A TrainerCallback that writes metrics as JSON lines while training and reports progress.

Each line of metrics.jsonl: {"step": int, "split": "train"|"test"|"summary", "epoch": float,
"time": iso, "values": {name: number}}. Test-split names lose TRL's "eval_" prefix, so the train
"accuracy" and the test "accuracy" line up.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

MetricRecord = dict[str, Any]


def split_logs(logs: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """(split, values) for one Trainer log event; non-numeric and non-finite values are dropped."""
    numeric = {
        key: float(value) for key, value in logs.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))
    }
    if any(key.startswith("eval_") for key in numeric):
        return "test", {key.removeprefix("eval_"): value for key, value in numeric.items() if key != "epoch"}
    if "train_runtime" in numeric:
        return "summary", {key: value for key, value in numeric.items() if key != "epoch"}
    return "train", {key: value for key, value in numeric.items() if key != "epoch"}


class MetricsCallback(TrainerCallback):
    """Append each log event to `path` (main process only) and pass it on to `on_record`.

    Args:
        path: the metrics.jsonl file; truncated when training begins.
        on_record: called with each record (the platform writes TrainingMetric rows from it).
        on_progress: called with (steps_done, steps_total) after every optimizer step.
    """

    def __init__(self, path: str | Path, *, on_record: Callable[[MetricRecord], None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> None:
        self.path = Path(path)
        self.on_record = on_record
        self.on_progress = on_progress
        # Start a fresh file once per job (not at train begin: the DPO job evaluates before training).
        if os.environ.get("RANK", "0") == "0":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def write(self, record: MetricRecord) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.on_record:
            self.on_record(record)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.on_progress:
            self.on_progress(0, int(state.max_steps))

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.on_progress:
            self.on_progress(int(state.global_step), int(state.max_steps))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        split, values = split_logs(logs)
        if values:
            self.write({
                "step": int(state.global_step), "split": split, "epoch": float(state.epoch or 0.0),
                "time": datetime.now(UTC).isoformat(), "values": values,
            })
