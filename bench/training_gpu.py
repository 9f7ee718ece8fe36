"""GPU benchmark: sft, reward-model, DPO and RLOO training on a random-weight model of a real ~0.5B architecture.

Qwen2-0.5B's shape (24 layers, hidden 896, 14 heads / 2 KV heads, vocab 151,936; ~494M parameters)
with random weights and the project's tiny tokenizer (no download), trained through the same
training.jobs code as the platform, on a synthetic export of `--pairs` pairs of ~`--words` words
(sft trains on each pair's prompt + chosen response; rloo samples `--rl-new-tokens` tokens, 4 per prompt,
against the reward job's model when it ran, else a fresh reward head on the base model).
Prints samples/s and peak GPU memory for each job, and the exact command that reproduced them.

    python bench/training_gpu.py --steps 200 --batch-size 8 --max-length 512
    python bench/training_gpu.py --jobs sft,dpo,rloo --steps 20
    python bench/training_gpu.py --tiny --steps 5   # CPU smoke test of the code path (figures meaningless)

Runs only where CUDA exists unless --tiny is given.
"""
from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QWEN2_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, max_position_embeddings=4096, tie_word_embeddings=True)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=512, max_position_embeddings=1024, tie_word_embeddings=True)


def build_model(directory: Path, *, tiny: bool) -> int:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from training.tiny_model import default_tiny_model_dir, ensure_tiny_model

    tokenizer = AutoTokenizer.from_pretrained(ensure_tiny_model(default_tiny_model_dir()))
    shape = dict(TINY if tiny else QWEN2_05B)
    shape["vocab_size"] = max(shape["vocab_size"], len(tokenizer))
    config = Qwen2Config(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return sum(p.numel() for p in model.parameters())


def long_export(directory: Path, *, pairs: int, words: int) -> Path:
    from training.data import write_export
    from training.synthetic import FILLER, synthetic_pairs

    rng = random.Random(0)
    rows = synthetic_pairs(prompts=pairs // 2, pairs_per_prompt=2)
    for row in rows:
        for side in ("chosen", "rejected"):
            extra = " ".join(rng.choice(FILLER) for _ in range(words))
            row[side][0]["content"] += " " + extra
    cut = int(len(rows) * 0.9) // 2 * 2  # whole prompts on each side
    write_export(directory / "sft", train=[_sft_row(r) for r in rows[:cut]], test=[_sft_row(r) for r in rows[cut:]],
                 export_format="sft")
    return write_export(directory, train=rows[:cut], test=rows[cut:])


def _sft_row(row: dict) -> dict:
    return {"messages": row["prompt"] + row["chosen"], "prompt_id": row["prompt_id"]}


def run(kind: str, export: Path, model_dir: Path, out: Path, args) -> dict:
    import torch

    from training.config import DPOJobConfig, RewardJobConfig, RLJobConfig, SFTJobConfig
    from training.run import run_job

    common = dict(data=str(export), output_dir=str(out), base_model=str(model_dir), max_steps=args.steps,
                  per_device_batch_size=args.batch_size, max_length=args.max_length, learning_rate=1e-5,
                  logging_steps=max(1, args.steps // 10), eval_steps=0, gradient_checkpointing=args.gradient_checkpointing)
    if kind == "sft":
        config = SFTJobConfig(**{**common, "data": str(export / "sft")})
    elif kind == "reward":
        config = RewardJobConfig(**common)
    elif kind == "dpo":
        config = DPOJobConfig(**common)
    elif kind == "rloo":
        reward = out.parent / "reward" / "model"
        config = RLJobConfig(**{**common, "per_device_batch_size": max(4, args.batch_size // 4 * 4)},
                             reward_model=str(reward if (reward / "config.json").exists() else model_dir),
                             num_generations=4, max_new_tokens=args.rl_new_tokens, eval_prompts=args.rl_eval_prompts)
    else:
        raise SystemExit(f"unknown job {kind!r}: choose from sft, reward, dpo, rloo")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.monotonic()
    report = run_job(kind, config)
    wall = time.monotonic() - started
    train = report["train"]
    return {
        "job": kind, "steps": train["steps"], "batch_size": config.per_device_batch_size, "max_length": args.max_length,
        "train_samples_per_second": train["samples_per_second"],
        "train_runtime_s": train["runtime_s"], "wall_s_including_load_and_eval": round(wall, 1),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        "precision": report["precision"], "device": report["device"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=4000)
    parser.add_argument("--words", type=int, default=150, help="filler words appended to each response")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--jobs", default="sft,reward,dpo,rloo", help="comma-separated: sft, reward, dpo, rloo")
    parser.add_argument("--rl-new-tokens", type=int, default=64, help="rloo: tokens sampled per completion")
    parser.add_argument("--rl-eval-prompts", type=int, default=16, help="rloo: held-out prompts scored before/after")
    parser.add_argument("--tiny", action="store_true", help="a tiny model on CPU: checks the code path only")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available() and not args.tiny:
        print("No CUDA device: this benchmark measures GPU training. Use --tiny for a CPU smoke test.", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="training-gpu-bench-") as tmp:
        tmp_path = Path(tmp)
        parameters = build_model(tmp_path / "model", tiny=args.tiny)
        export = long_export(tmp_path / "export", pairs=args.pairs, words=args.words)
        results = [run(kind, export, tmp_path / "model", tmp_path / kind, args) for kind in args.jobs.split(",")]
    figures = {"architecture": "tiny" if args.tiny else "Qwen2-0.5B shape, random weights",
               "parameters": parameters, "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "results": results,
               "command": "python " + " ".join(shlex.quote(a) for a in sys.argv)}
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
