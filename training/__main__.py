"""Command line: `python -m training reward|dpo --data EXPORT_DIR --output_dir OUT [options]`.

Every option is a field of training.config.RewardJobConfig / DPOJobConfig (see `--help`).
Exit status 2 with the reason on bad options or an unusable export directory.
Multi-GPU: `accelerate launch -m training dpo --data ... --output_dir ...`.
"""
from __future__ import annotations

import json
import os
import sys

from transformers import HfArgumentParser

from training.config import DPOJobConfig, RewardJobConfig
from training.data import ExportDataError
from training.jobs import JobError, run_job

CONFIGS = {"reward": RewardJobConfig, "dpo": DPOJobConfig}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in CONFIGS:
        print("usage: python -m training {reward,dpo} --data EXPORT_DIR --output_dir OUT [options]\n"
              "       python -m training {reward,dpo} --help", file=sys.stderr)
        return 2
    kind = argv.pop(0)
    parser = HfArgumentParser(CONFIGS[kind], prog=f"python -m training {kind}")
    try:
        (config,) = parser.parse_args_into_dataclasses(args=argv)  # argparse itself exits 2 on bad values
    except ValueError as exc:  # HfArgumentParser's answer to unknown options
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        report = run_job(kind, config)
    except (ExportDataError, JobError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") != "0":
        return 0  # under accelerate/torchrun the main process reports
    summary = {"report": f"{config.output_dir}/report.json", "model_dir": report.get("model_dir"),
               "train": report.get("train"), "test": report.get("test")}
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
