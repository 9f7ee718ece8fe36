"""Generation throughput: the batched transformers path against one sample at a time.

CPU (default): the tiny local model; the same prompts are sampled K times each, once through the
batched path (several prompts per `generate` call, num_return_sequences=K) and once one sample
per call. Every sample generates exactly --tokens tokens (min_new_tokens = max_new_tokens), so both
paths do the same work. Prints the median tokens/s of --runs runs of each, and their ratio.

GPU (--gpu, only where CUDA exists): a model of Qwen2-0.5B's architecture with random weights
(nothing downloaded), bfloat16, through the same backend; prints tokens/s and the share of the
memory-bandwidth roofline (each decoding step must read every weight and the KV cache once).

    python bench/generation.py                      # CPU, tiny model
    python bench/generation.py --gpu --prompts 64   # GPU host
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
from sampling import PromptInput, SamplingParams  # noqa: E402
from sampling.transformers_backend import TransformersBackend, _render, clear_cache  # noqa: E402

# Peak HBM bandwidth (bytes/s) by device name, for the roofline; --peak-bandwidth overrides.
PEAK_BANDWIDTH = [
    ("H200", 4.8e12),
    ("H100 PCIe", 2.0e12),
    ("H100", 3.35e12),
    ("A100-SXM4-80GB", 2.039e12),
    ("A100 80GB PCIe", 1.935e12),
    ("A100", 1.555e12),
    ("L40S", 0.864e12),
    ("A10G", 0.6e12),
    ("L4", 0.3e12),
]
QWEN2_05B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
    "rope_theta": 1000000.0,
}


def make_prompts(count: int) -> list[PromptInput]:
    topics = ["tea", "rivers", "trains", "owls", "maps", "bread", "stars", "bees", "clocks", "salt"]
    return [
        PromptInput(i + 1, [{"role": "user", "content": f"Tell me about {topics[i % 10]} number {i}" + " please" * (i % 7)}])
        for i in range(count)
    ]


def params(args, *, n: int, batch_size: int, seed: int = 0) -> SamplingParams:
    return SamplingParams(
        n=n, temperature=0.8, top_p=0.95, max_new_tokens=args.tokens, seed=seed, batch_size=batch_size,
        extra={"min_new_tokens": args.tokens},
    )


def run_batched(backend, prompts, args) -> tuple[int, float]:
    start = time.perf_counter()
    results = backend.generate(prompts, params(args, n=args.n, batch_size=args.batch_size))
    return sum(r.tokens for r in results), time.perf_counter() - start


def run_one_at_a_time(backend, prompts, args) -> tuple[int, float]:
    tokens = 0
    start = time.perf_counter()
    for prompt in prompts:
        for sample in range(args.n):
            [result] = backend.generate([prompt], params(args, n=1, batch_size=1, seed=sample))
            tokens += result.tokens
    return tokens, time.perf_counter() - start


def cpu_bench(args) -> dict:
    from training.tiny_model import default_tiny_model_dir, ensure_tiny_model

    model = args.model or str(ensure_tiny_model(default_tiny_model_dir()))
    backend = TransformersBackend(model=model)
    prompts = make_prompts(args.prompts)
    run_batched(backend, prompts[:2], args)  # warm-up
    batched, single = [], []
    for _ in range(args.runs):
        tokens, seconds = run_batched(backend, prompts, args)
        batched.append(tokens / seconds)
        tokens, seconds = run_one_at_a_time(backend, prompts, args)
        single.append(tokens / seconds)
    b, s = statistics.median(batched), statistics.median(single)
    return {
        "mode": "cpu",
        "model": model,
        "prompts": args.prompts,
        "n": args.n,
        "tokens_per_sample": args.tokens,
        "batch_size_prompts": args.batch_size,
        "runs": args.runs,
        "batched_tokens_per_s": round(b, 1),
        "one_at_a_time_tokens_per_s": round(s, 1),
        "ratio": round(b / s, 2),
        "all_batched": [round(x, 1) for x in batched],
        "all_one_at_a_time": [round(x, 1) for x in single],
    }


def build_random_model(directory: Path, device: str = "cuda") -> Path:
    """Qwen2-0.5B's architecture with random weights and the tiny tokenizer (its ids fit the vocabulary)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from training.tiny_model import default_tiny_model_dir, ensure_tiny_model

    tiny = ensure_tiny_model(default_tiny_model_dir())
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    tokenizer.model_max_length = QWEN2_05B["max_position_embeddings"]
    config = Qwen2Config(
        **QWEN2_05B,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    del model
    torch.cuda.empty_cache()
    return directory


def peak_bandwidth(name: str, override: float | None) -> float | None:
    if override:
        return override
    for key, value in PEAK_BANDWIDTH:
        if key in name:
            return value
    return None


def gpu_bench(args) -> dict:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs CUDA; none here (this machine runs the CPU benchmark only)")
    directory = Path(tempfile.mkdtemp(prefix="bench-qwen2-0.5b-random-"))
    build_random_model(directory)
    clear_cache()
    backend = TransformersBackend(model=str(directory))
    model = backend.model
    prompts = make_prompts(args.prompts)
    run_batched(backend, prompts[: max(1, args.batch_size // 4)], args)  # warm-up (kernels, allocator)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    rates = []
    for _ in range(args.runs):
        tokens, seconds = run_batched(backend, prompts, args)
        torch.cuda.synchronize()
        rates.append(tokens / seconds)
    rate = statistics.median(rates)

    # Roofline: each decoding step reads all weights once plus each sequence's KV cache so far.
    cfg = model.config
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    kv_per_token = cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * head_dim * 2  # bf16 K and V
    prompt_tokens = sorted((len(_render(backend.tokenizer, p.messages)) for p in prompts), reverse=True)
    name = torch.cuda.get_device_name(0)
    bandwidth = peak_bandwidth(name, args.peak_bandwidth)
    ideal_seconds = 0.0
    seqs_per_call = args.batch_size * args.n
    for start in range(0, len(prompts), args.batch_size):
        chunk = prompt_tokens[start : start + args.batch_size]
        context = max(chunk)  # left padded to the longest prompt
        seqs = len(chunk) * args.n
        for step in range(args.tokens):
            step_bytes = weight_bytes + seqs * (context + step) * kv_per_token
            ideal_seconds += step_bytes / bandwidth if bandwidth else 0.0
    total_tokens = len(prompts) * args.n * args.tokens
    roofline = total_tokens / ideal_seconds if ideal_seconds else None
    return {
        "mode": "gpu",
        "device": name,
        "model": "Qwen2-0.5B architecture, random weights, bfloat16",
        "parameters": sum(p.numel() for p in model.parameters()),
        "prompts": args.prompts,
        "n": args.n,
        "tokens_per_sample": args.tokens,
        "sequences_per_generate_call": seqs_per_call,
        "runs": args.runs,
        "tokens_per_s": round(rate, 1),
        "all_tokens_per_s": [round(x, 1) for x in rates],
        "peak_bandwidth_bytes_per_s": bandwidth,
        "roofline_tokens_per_s": round(roofline, 1) if roofline else None,
        "share_of_roofline": round(rate / roofline, 3) if roofline else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="the ~0.5B random-weight model on CUDA")
    parser.add_argument("--model", default="", help="CPU mode: another local model instead of the tiny one")
    parser.add_argument("--prompts", type=int, default=None, help="prompts (default 16 on CPU, 256 on GPU)")
    parser.add_argument("--n", type=int, default=4, help="samples per prompt (K)")
    parser.add_argument("--tokens", type=int, default=None, help="tokens per sample (default 48 on CPU, 256 on GPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="prompts per generate call (default 16 on CPU, 64 on GPU)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each path; the median is reported")
    parser.add_argument("--peak-bandwidth", type=float, default=None, help="GPU memory bandwidth in bytes/s for the roofline")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args(argv)
    args.prompts = args.prompts or (256 if args.gpu else 16)
    args.tokens = args.tokens or (256 if args.gpu else 48)
    args.batch_size = args.batch_size or (64 if args.gpu else 16)
    for name in ("prompts", "n", "tokens", "batch_size", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    figures = gpu_bench(args) if args.gpu else cpu_bench(args)
    args_text = " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    figures["command"] = f"python bench/generation.py {args_text}".strip()
    figures["host"] = f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end"
    if args.json:
        print(json.dumps(figures))
        return 0
    if figures["mode"] == "cpu":
        print(f"model: {figures['model']} on CPU; {args.prompts} prompts x {args.n} samples x {args.tokens} tokens")
        print(f"batched ({args.batch_size} prompts x {args.n} per generate call): {figures['batched_tokens_per_s']} tokens/s (median of {args.runs})")
        print(f"one sample at a time: {figures['one_at_a_time_tokens_per_s']} tokens/s (median of {args.runs})")
        print(f"ratio: {figures['ratio']}x")
    else:
        print(f"device: {figures['device']}; {figures['model']} ({figures['parameters'] / 1e6:.0f}M parameters)")
        print(f"{args.prompts} prompts x {args.n} samples x {args.tokens} tokens, {figures['sequences_per_generate_call']} sequences per call")
        print(f"throughput: {figures['tokens_per_s']} tokens/s (median of {args.runs}); peak memory {figures['peak_memory_gib']} GiB")
        if figures["roofline_tokens_per_s"]:
            print(f"memory-bandwidth roofline: {figures['roofline_tokens_per_s']} tokens/s; share: {figures['share_of_roofline']:.1%}")
        else:
            print("roofline: unknown device bandwidth (pass --peak-bandwidth)")
    print(f"host: {figures['host']}")
    print(f"reproduce: {figures['command']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
