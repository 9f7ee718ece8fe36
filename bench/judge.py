"""Judge throughput: comparisons per second, batched forward passes against one prompt at a time.

A comparison is one pair asked in both orders (two judge prompts, one forward pass each, reading
the next-token probabilities of "A" and "B"). The prompts are what `judge --pairs all` asks: tasks
of --responses answers, every pair in both orders, so one task's prompts share the system message
and the conversation. CPU (default): the tiny local model through sampling.judge.TransformersJudge,
six paths alternated run by run:

- batched: --batch-size prompts per forward pass with the shared beginning computed once, and on
  CPU as many passes at once as torch has threads (at most 4), one thread each (the judge's default);
- batched without prefix sharing (plain chunks sorted by length), passes at once as above;
- batched, one pass at a time (parallel=1: each pass on all of torch's threads);
- one at a time: one prompt per forward pass, one pass after the other, torch's threads (the
  reference of the ratios: what the judge does without batching);
- one at a time on one thread (the fastest way to run one prompt per pass, one after the other);
- one prompt per pass, passes at once as the batched path runs them (batching alone, nothing else changed).

Prints the median comparisons/s of --runs runs of each path, the ratios of the three batched paths
to one at a time (the target is >= 3x), and of the default path to the last two.

GPU (--gpu, only where CUDA exists): a model of Qwen2-0.5B's architecture with random weights
(bench/generation.py builds it; nothing downloaded), bfloat16, the same paths (a GPU runs passes in turn).

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
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import workers  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads)
from sampling.judge import JudgeQuery, TransformersJudge, judge_messages  # noqa: E402

TOPICS = ("reverse a list", "read a file line by line", "count the words in a string", "sort a dict by its values",
          "remove duplicates from a list", "merge two dicts", "check whether a number is prime", "flatten a nested list")
PRINCIPLES = ("Prefer the response that is correct and honest about what it does not know.",
              "Prefer the response a beginner can follow.",
              "Prefer the response that is concise and does not pad.")
OPENINGS = ("Sure. The simplest way", "You can do it with a built-in:", "One idiomatic option", "Here is a short example")


def task_responses(task: int, k: int) -> list[str]:
    """K different answers to one task's question: prose, a code block, and caveats of their own."""
    topic = TOPICS[task % len(TOPICS)]
    out = []
    for r in range(k):
        body = f"{OPENINGS[r % len(OPENINGS)]} to {topic}.\n\n```python\nresult = do({r})\n```\n"
        if r % 2:
            body += "\nThis runs in linear time and keeps the order of the items.\n"
        if r % 3 == 2:
            body += "\nI am not sure this handles every case.\n"
        out.append(body)
    return out


def queries(comparisons: int, k: int = 4) -> list[JudgeQuery]:
    """What `judge --pairs all` asks: per task of k responses every pair, each in both orders, one principle per pair."""
    out: list[JudgeQuery] = []
    task = 0
    while len(out) < 2 * comparisons:
        conversation = [{"role": "user", "content": f"Task {task}: how do I {TOPICS[task % len(TOPICS)]} in Python? "
                                                    "Show a short example."}]
        responses = task_responses(task, k)
        for a, b in combinations(range(k), 2):
            principle = PRINCIPLES[(task + a * k + b) % len(PRINCIPLES)]
            for order, (first, second) in enumerate(((a, b), (b, a))):
                messages = judge_messages(conversation=conversation, principle=principle,
                                          response_a=responses[first], response_b=responses[second])
                out.append(JudgeQuery(key=(task, a, b, order), messages=messages))
        task += 1
    return out[: 2 * comparisons]


def timed(judge: TransformersJudge, batch_size: int, items: list[JudgeQuery], share_prefix: bool = True,
          parallel: int = 0, threads: int = 0) -> float:
    import torch

    judge.batch_size, judge.share_prefix, judge.parallel = batch_size, share_prefix, parallel
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        started = time.perf_counter()
        answers = judge.judge(items)
        seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(before)
    assert len(answers) == len(items) and all(not a.failed for a in answers)
    return (len(items) / 2) / seconds  # comparisons (two prompts each) per second


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=48, help="response pairs (each asked in both orders)")
    parser.add_argument("--responses", type=int, default=4, help="responses per task (its pairs share the conversation)")
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
    items = queries(args.comparisons, args.responses)
    paths = {  # name -> timed()'s arguments after the judge
        "batched": (args.batch_size, items),
        "batched_without_prefix_sharing": (args.batch_size, items, False),
        "batched_one_pass_at_a_time": (args.batch_size, items, True, 1),
        "one_at_a_time": (1, items, True, 1),
        "one_at_a_time_one_thread": (1, items, True, 1, 1),
        "one_prompt_per_pass_passes_at_once": (1, items),
    }
    for arguments in paths.values():  # warm-up, every path
        timed(judge, *arguments)
    figures: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.runs):  # alternated, so a change in the shared machine's load hits every path alike
        for name, arguments in paths.items():
            figures[name].append(timed(judge, *arguments))
    median = {name: statistics.median(values) for name, values in figures.items()}
    single = median["one_at_a_time"]
    judge.parallel = 0  # the default path's setting, for the report
    report = {
        "device": torch.cuda.get_device_name(0) if args.gpu else f"cpu ({platform.processor() or platform.machine()}, "
                                                                 f"{torch.get_num_threads()} threads)",
        "model": model if not args.gpu else "Qwen2-0.5B architecture, random weights, bfloat16",
        "comparisons": args.comparisons,
        "batch_size": args.batch_size,
        "responses_per_task": args.responses,
        "passes_at_once": judge.passes_at_once(len(items)) if not args.gpu else 1,
        **{f"{name}_comparisons_per_second": round(value, 2) for name, value in median.items()},
        "ratio": round(median["batched"] / single, 2),
        "ratio_without_prefix_sharing": round(median["batched_without_prefix_sharing"] / single, 2),
        "ratio_one_pass_at_a_time": round(median["batched_one_pass_at_a_time"] / single, 2),
        "ratio_to_one_at_a_time_one_thread": round(median["batched"] / median["one_at_a_time_one_thread"], 2),
        "ratio_to_one_prompt_per_pass_passes_at_once": round(median["batched"] / median["one_prompt_per_pass_passes_at_once"], 2),
        **{f"all_{name}": [round(x, 2) for x in values] for name, values in figures.items()},
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "command": "python " + shlex.join(["bench/judge.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    print(json.dumps(report, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
