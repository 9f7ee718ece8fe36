"""Held-out evaluation: reward-model pairwise accuracy with a Wilson interval beside the
'longer response wins' baseline, and the win rate of a policy against its base judged by a reward model.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Messages = list[dict[str, str]]


def wilson_interval(successes: float, n: int, *, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% for z=1.96); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: float, n: int) -> dict[str, Any]:
    low, high = wilson_interval(successes, n)
    return {"value": successes / n if n else None, "ci95": [low, high], "n": n}


def _text(messages: Messages) -> str:
    return "".join(message["content"] for message in messages)


def longer_wins_accuracy(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The baseline: predict that the longer response (in characters) was preferred; ties count half."""
    score = 0.0
    for row in rows:
        chosen, rejected = len(_text(row["chosen"])), len(_text(row["rejected"]))
        score += 1.0 if chosen > rejected else 0.5 if chosen == rejected else 0.0
    return proportion(score, len(rows))


def reward_scores(model, tokenizer, conversations: Sequence[Messages], *, batch_size: int = 16,
                  max_length: int = 512) -> list[float]:
    """The scalar reward of each full conversation (prompt plus response) under a sequence-classification model."""
    import torch

    texts = [tokenizer.apply_chat_template(conversation, tokenize=False) for conversation in conversations]
    device = next(model.parameters()).device
    scores: list[float] = []
    model.eval()
    # Every pair is scored (TRL's trainer drops pairs over max_length instead); cut from the left so the
    # response, which the score is about, is kept.
    truncation_side = tokenizer.truncation_side
    tokenizer.truncation_side = "left"
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True, truncation=True,
                                  max_length=max_length, add_special_tokens=False).to(device)
                logits = model(**batch).logits
                scores.extend(logits[:, 0].float().cpu().tolist())
    finally:
        tokenizer.truncation_side = truncation_side
    return scores


def reward_model_evaluation(model, tokenizer, rows: Sequence[dict[str, Any]], *, max_length: int = 512) -> dict[str, Any]:
    """Pairwise accuracy (chosen scored above rejected) on held-out rows, with its 95% Wilson interval."""
    chosen = reward_scores(model, tokenizer, [row["prompt"] + row["chosen"] for row in rows], max_length=max_length)
    rejected = reward_scores(model, tokenizer, [row["prompt"] + row["rejected"] for row in rows], max_length=max_length)
    correct = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True))
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {
        "pairs": len(rows),
        "accuracy": proportion(correct, len(rows)),
        "mean_margin": sum(margins) / len(margins) if margins else None,
        "baseline_longer_wins": longer_wins_accuracy(rows),
    }


def sample_responses(model, tokenizer, prompts: Sequence[Messages], *, max_new_tokens: int, seed: int,
                     batch_size: int = 16) -> list[str]:
    """One sampled response per prompt with the model's real `generate` (temperature 0.7, seeded)."""
    import torch

    device = next(model.parameters()).device
    model.eval()
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    outputs: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                     for p in prompts[start:start + batch_size]]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            torch.manual_seed(seed + start)
            with torch.no_grad():
                generated = model.generate(**batch, do_sample=True, temperature=0.7, top_p=0.95,
                                           max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
            new_tokens = generated[:, batch["input_ids"].shape[1]:]
            outputs.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = padding_side
    return outputs


def policy_win_rate(*, policy, base, tokenizer, judge, judge_tokenizer, prompts: Sequence[Messages],
                    max_new_tokens: int, seed: int) -> dict[str, Any]:
    """Share of held-out prompts where the judge scores the policy's response above the base's (ties half)."""
    policy_texts = sample_responses(policy, tokenizer, prompts, max_new_tokens=max_new_tokens, seed=seed)
    base_texts = sample_responses(base, tokenizer, prompts, max_new_tokens=max_new_tokens, seed=seed)

    def conversations(texts: list[str]) -> list[Messages]:
        return [list(p) + [{"role": "assistant", "content": t}] for p, t in zip(prompts, texts, strict=True)]

    policy_scores = reward_scores(judge, judge_tokenizer, conversations(policy_texts))
    base_scores = reward_scores(judge, judge_tokenizer, conversations(base_texts))
    wins = sum(1.0 if p > b else 0.5 if p == b else 0.0 for p, b in zip(policy_scores, base_scores, strict=True))
    return {
        "prompts": len(prompts),
        "win_rate": proportion(wins, len(prompts)),
        "mean_judge_reward_policy": sum(policy_scores) / len(policy_scores) if policy_scores else None,
        "mean_judge_reward_base": sum(base_scores) / len(base_scores) if base_scores else None,
        "examples": [{"prompt": _text(p), "policy": a, "base": b}
                     for p, a, b in list(zip(prompts, policy_texts, base_texts, strict=True))[:3]],
    }
