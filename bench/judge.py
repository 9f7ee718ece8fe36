"""Judge throughput: comparisons per second, batched forward passes against one prompt at a time.

A comparison is one pair asked in both orders (two judge prompts, one forward pass each, reading
the next-token probabilities of "A" and "B"). CPU (default): the tiny local model through
sampling.judge.TransformersJudge, --comparisons pairs of synthetic responses, once with
--batch-size prompts per forward pass and once with one. Prints the median comparisons/s of
--runs runs of each and their ratio (the target is >= 3x).

GPU (--gpu, only where CUDA exists): a model of Qwen2-0.5B's architecture with random weights
(bench/generation.py builds it; nothing downloaded), bfloat16, same two paths.

    python bench/judge.py                         # CPU, tiny model
    python bench/judge.py --gpu --comparisons 512 --batch-size 64
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import workers  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads)
from sampling.judge import JudgeQuery, TransformersJudge, judge_messages  # noqa: E402


def queries(count: int) -> list[JudgeQuery]:
    out = []
    for i in range(count):
        a = f"Answer {i}: the capital of France is Paris, a city on the Seine. " * (1 + i % 3)
        b = f"Answer {i}: I think it might be Lyon, but I am not sure at all. " * (1 + (i + 1) % 3)
        for order, (first, second) in enumerate(((a, b), (b, a))):
            messages = judge_messages(conversation=[{"role": "user", "content": f"Question {i}: what is the capital of France?"}],
                                      principle="Prefer the response that is honest and correct.", response_a=first, response_b=second)
            out.append(JudgeQuery(key=(i, order), messages=messages))
    return out


def timed(judge: TransformersJudge, batch_size: int, items: list[JudgeQuery]) -> float:
    judge.batch_size = batch_size
    started = time.perf_counter()
    answers = judge.judge(items)
    seconds = time.perf_counter() - started
    assert len(answers) == len(items) and all(not a.failed for a in answers)
    return (len(items) / 2) / seconds  # comparisons (two prompts each) per second


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per forward pass on the batched path")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gpu", action="store_true", help="CUDA, a Qwen2-0.5B-sized model with random weights")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--model", default="", help="a local model instead (default: the tiny model, or the random one with --gpu)")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.gpu and not torch.cuda.is_available():
        print("--gpu: no CUDA device here", file=sys.stderr)
        return 2
    model = args.model
    tmp = None
    if not model and args.gpu:
        from bench.generation import build_random_model

        tmp = tempfile.TemporaryDirectory()
        model = str(build_random_model(Path(tmp.name) / "qwen2-0.5b-random"))
    elif not model:
        from training.tiny_model import default_tiny_model_dir, ensure_tiny_model

        model = str(ensure_tiny_model(default_tiny_model_dir()))
    judge = TransformersJudge(model=model)
    items = queries(args.comparisons)
    timed(judge, args.batch_size, items[:4])  # warm-up
    batched, single = [], []
    for _ in range(args.runs):  # alternated, so a change in the shared machine's load hits both paths alike
        batched.append(timed(judge, args.batch_size, items))
        single.append(timed(judge, 1, items))
    b, s = statistics.median(batched), statistics.median(single)
    report = {
        "device": torch.cuda.get_device_name(0) if args.gpu else f"cpu ({platform.processor() or platform.machine()}, "
                                                                 f"{torch.get_num_threads()} threads)",
        "model": model if not args.gpu else "Qwen2-0.5B architecture, random weights, bfloat16",
        "comparisons": args.comparisons,
        "batch_size": args.batch_size,
        "batched_comparisons_per_second": round(b, 2),
        "one_at_a_time_comparisons_per_second": round(s, 2),
        "ratio": round(b / s, 2),
        "all_batched": [round(x, 2) for x in batched],
        "all_one_at_a_time": [round(x, 2) for x in single],
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "command": "python " + shlex.join(["bench/judge.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    print(json.dumps(report, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
