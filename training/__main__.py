"""Command line: `python -m training KIND --data EXPORT_DIR --output_dir OUT [options]`.

KIND is one of sft, reward, dpo, kto, orpo, rloo, grpo; every option is a field of that kind's config
dataclass in training.config (see `python -m training KIND --help`). `python -m training --help` lists the
kinds and exits 0. Exit status 2 with the reason on bad options or an unusable export directory.
Multi-GPU: `accelerate launch -m training dpo --data ... --output_dir ...`.
"""
from __future__ import annotations

import json
import os
import sys

from transformers import HfArgumentParser

from training.config import JOB_CONFIGS, KIND_FORMATS, KIND_HELP
from training.data import ExportDataError
from training.jobs import JobError
from training.run import run_job

KINDS = "{" + ",".join(JOB_CONFIGS) + "}"


def usage() -> str:
    lines = [f"usage: python -m training {KINDS} --data EXPORT_DIR --output_dir OUT [options]",
             f"       python -m training {KINDS} --help   (the options of one kind)", "", "kinds:"]
    for kind, text in KIND_HELP.items():
        lines.append(f"  {kind:7} {text}; export format: {' or '.join(KIND_FORMATS[kind])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv or argv[0] not in JOB_CONFIGS:
        if argv:
            print(f"error: unknown kind {argv[0]!r}", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    kind = argv.pop(0)
    parser = HfArgumentParser(JOB_CONFIGS[kind], prog=f"python -m training {kind}")
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
               "train": report.get("train"), "test": _short(report.get("test")), "warnings": report.get("warnings")}
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _short(test):
    """The report's test section without the long per-example lists."""
    if not isinstance(test, dict):
        return test
    return {k: ({kk: vv for kk, vv in v.items() if kk not in ("rewards", "examples")} if isinstance(v, dict) else v)
            for k, v in test.items() if k != "examples"}


if __name__ == "__main__":
    sys.exit(main())
