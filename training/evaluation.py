"""Held-out evaluation, from per-example outcomes: reward-model pairwise accuracy beside the 'longer
response wins' baseline, DPO implicit-reward accuracy, completion loss, and the win rate of a policy
against its base judged by a reward model. Every proportion is a whole count over a whole count with
its Wilson interval; ties are counted apart.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Messages = list[dict[str, str]]


def wilson_interval(successes: int, n: int, *, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion of whole counts (95% for z=1.96); (0, 1) when n is 0."""
    if isinstance(successes, bool) or not isinstance(successes, int):
        raise TypeError(f"successes must be a whole count, got {successes!r}")
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: int, n: int) -> dict[str, Any]:
    """`successes` of `n` (whole counts) with the 95% Wilson interval; value None when n is 0."""
    low, high = wilson_interval(successes, n)
    return {"value": successes / n if n else None, "ci95": [low, high], "successes": successes, "n": n}


def pairwise_outcomes(first: Sequence[float], second: Sequence[float]) -> dict[str, Any]:
    """Per-example outcomes of `first` against `second`: wins, ties and losses counted apart.

    `accuracy` is wins / n (a tie is not a win), with its Wilson interval; `decisive` is wins / (wins +
    losses), the same with ties left out. Both are whole counts over whole counts, never a mean of batch means.
    """
    wins = ties = losses = 0
    for a, b in zip(first, second, strict=True):
        if a > b:
            wins += 1
        elif a == b:
            ties += 1
        else:
            losses += 1
    n = wins + ties + losses
    return {"n": n, "wins": wins, "ties": ties, "losses": losses,
            "accuracy": proportion(wins, n), "decisive": proportion(wins, wins + losses)}


def _text(messages: Messages) -> str:
    return "".join(message["content"] for message in messages)


def longer_wins_accuracy(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The baseline: predict that the longer response (in characters) was preferred; equal lengths are ties."""
    outcomes = pairwise_outcomes([len(_text(row["chosen"])) for row in rows], [len(_text(row["rejected"])) for row in rows])
    return {**outcomes["accuracy"], "ties": outcomes["ties"]}


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


def reward_model_evaluation(model, tokenizer, rows: Sequence[dict[str, Any]], *, max_length: int = 512,
                            batch_size: int = 16) -> dict[str, Any]:
    """Pairwise accuracy on held-out rows from per-pair outcomes: chosen above rejected counts, ties apart."""
    chosen = reward_scores(model, tokenizer, [row["prompt"] + row["chosen"] for row in rows], max_length=max_length,
                           batch_size=batch_size)
    rejected = reward_scores(model, tokenizer, [row["prompt"] + row["rejected"] for row in rows], max_length=max_length,
                             batch_size=batch_size)
    outcomes = pairwise_outcomes(chosen, rejected)
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {
        "pairs": len(rows),
        "accuracy": outcomes["accuracy"],
        "wins": outcomes["wins"], "ties": outcomes["ties"], "losses": outcomes["losses"],
        "mean_margin": sum(margins) / len(margins) if margins else None,
        "baseline_longer_wins": longer_wins_accuracy(rows),
    }


def _completion_tokens(tokenizer, prompt: Messages, completion: Messages, max_length: int) -> tuple[list[int], int]:
    """Token ids of prompt plus completion (chat template) and where the completion starts."""
    prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(list(prompt) + list(completion), tokenize=False)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    start = len(prompt_ids) if full_ids[:len(prompt_ids)] == prompt_ids else len(prompt_ids) - 1
    if len(full_ids) > max_length:  # keep the completion: cut the prompt from the left
        cut = len(full_ids) - max_length
        full_ids, start = full_ids[cut:], max(1, start - cut)
    return full_ids, max(1, start)


def completion_logps(model, tokenizer, prompts: Sequence[Messages], completions: Sequence[Messages], *,
                     max_length: int = 512, batch_size: int = 8) -> list[tuple[float, int]]:
    """(sum of log-probabilities, token count) of each completion given its prompt, one per example."""
    import torch

    device = next(model.parameters()).device
    model.eval()
    encoded = [_completion_tokens(tokenizer, p, c, max_length) for p, c in zip(prompts, completions, strict=True)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    results: list[tuple[float, int]] = []
    with torch.no_grad():
        for begin in range(0, len(encoded), batch_size):
            chunk = encoded[begin:begin + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.bool)
            for row, (ids, start) in enumerate(chunk):  # right padding: positions are those of the unpadded text
                input_ids[row, :len(ids)] = torch.tensor(ids)
                attention[row, :len(ids)] = 1
                mask[row, start:len(ids)] = True
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float()
            logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
            target = mask[:, 1:].to(device)
            sums = (logps * target).sum(-1).cpu().tolist()
            counts = target.sum(-1).cpu().tolist()
            results.extend((float(s), int(c)) for s, c in zip(sums, counts, strict=True))
    return results


def dpo_implicit_reward_evaluation(policy, reference, tokenizer, rows: Sequence[dict[str, Any]], *, beta: float,
                                   max_length: int = 512, batch_size: int = 8) -> dict[str, Any]:
    """DPO's implicit reward beta * (log pi - log pi_ref) of chosen and rejected, per held-out pair.

    Accuracy counts the pairs whose chosen reward is higher; ties (exactly equal, as before any training,
    when the policy is the reference) are counted apart, so "before" reads 0 wins, n ties.
    """
    prompts = [row["prompt"] for row in rows]

    def rewards(side: str) -> list[float]:
        completions = [row[side] for row in rows]
        pol = completion_logps(policy, tokenizer, prompts, completions, max_length=max_length, batch_size=batch_size)
        ref = completion_logps(reference, tokenizer, prompts, completions, max_length=max_length, batch_size=batch_size)
        return [beta * (p - r) for (p, _), (r, _) in zip(pol, ref, strict=True)]

    chosen, rejected = rewards("chosen"), rewards("rejected")
    outcomes = pairwise_outcomes(chosen, rejected)
    return {**outcomes, "pairs": len(rows),
            "mean_reward_chosen": sum(chosen) / len(chosen) if chosen else None,
            "mean_reward_rejected": sum(rejected) / len(rejected) if rejected else None,
            "mean_margin": sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(chosen) if chosen else None}


def completion_loss(model, tokenizer, rows: Sequence[dict[str, Any]], *, max_length: int = 512,
                    batch_size: int = 8) -> dict[str, Any]:
    """Token-weighted held-out loss (mean negative log-likelihood per completion token) and its perplexity.

    Rows are prompt-completion ({"prompt": messages, "completion": messages}). Summed over all tokens and
    divided by the token count, so it does not depend on how the examples fall into batches.
    """
    results = completion_logps(model, tokenizer, [r["prompt"] for r in rows], [r["completion"] for r in rows],
                               max_length=max_length, batch_size=batch_size)
    tokens = sum(count for _, count in results)
    nll = -sum(total for total, _ in results)
    loss = nll / tokens if tokens else None
    return {"examples": len(rows), "tokens": tokens, "loss": loss,
            "perplexity": math.exp(loss) if loss is not None and loss < 700 else None}


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
    outcomes = pairwise_outcomes(policy_scores, base_scores)
    return {
        "prompts": len(prompts),
        # wins / prompts with its Wilson interval; ties (equal judge scores) counted apart, not as half
        "win_rate": outcomes["accuracy"],
        "wins": outcomes["wins"], "ties": outcomes["ties"], "losses": outcomes["losses"],
        "win_rate_without_ties": outcomes["decisive"],
        "mean_judge_reward_policy": sum(policy_scores) / len(policy_scores) if policy_scores else None,
        "mean_judge_reward_base": sum(base_scores) / len(base_scores) if base_scores else None,
        "examples": [{"prompt": _text(p), "policy": a, "base": b}
                     for p, a, b in list(zip(prompts, policy_texts, base_texts, strict=True))[:3]],
    }


def format_proportion(p: dict[str, Any] | None) -> str:
    """'0.333 (3/9, 95% CI 0.121-0.646)': a figure always shown with its count and interval."""
    if not p or p.get("value") is None:
        return "n/a (no examples)"
    low, high = p["ci95"]
    return f"{p['value']:.3f} ({p['successes']}/{p['n']}, 95% CI {low:.3f}-{high:.3f})"
