"""A synthetic preference set with an obvious rule: the chosen response contains a marker word.

Used by the learning tests and the benchmarks; prompts are split so train and test share none.
"""
from __future__ import annotations

import random

TOPICS = ["cooking", "python", "history", "music", "gardening", "travel", "science", "sport", "money", "health"]
FILLER = ["the", "simple", "list", "sauce", "book", "garden", "press", "water", "small", "light", "first", "time"]


def synthetic_pairs(*, prompts: int, pairs_per_prompt: int = 2, marker: str = "sure", seed: int = 0) -> list[dict]:
    """Rows in the export's `pairs` format; the chosen response always contains `marker`, the rejected never."""
    rng = random.Random(seed)
    rows = []
    for p in range(prompts):
        prompt = [{"role": "user", "content": f"Can you tell me about {rng.choice(TOPICS)} number {p}?"}]
        for k in range(pairs_per_prompt):
            # Same length distribution on both sides, so the 'longer wins' baseline stays near chance.
            words = [rng.choice(FILLER) for _ in range(rng.randint(4, 9))]
            other = [rng.choice(FILLER) for _ in range(len(words))]
            words.insert(rng.randrange(len(words) + 1), marker)
            other.insert(rng.randrange(len(other) + 1), rng.choice(FILLER))
            rows.append({
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": " ".join(words)}],
                "rejected": [{"role": "assistant", "content": " ".join(other)}],
                "margin": 1.0, "prompt_id": p + 1, "chosen_id": 2 * (p * pairs_per_prompt + k) + 1,
                "rejected_id": 2 * (p * pairs_per_prompt + k) + 2, "votes_chosen": 3, "votes_rejected": 0,
                "agreement": 1.0,
            })
    return rows


def synthetic_export(directory, *, train_prompts: int = 48, test_prompts: int = 16, pairs_per_prompt: int = 2,
                     marker: str = "sure", seed: int = 0, file_format: str = "jsonl"):
    """Write a prompt-disjoint synthetic export into `directory` (export layout) and return its path."""
    from training.data import write_export

    rows = synthetic_pairs(prompts=train_prompts + test_prompts, pairs_per_prompt=pairs_per_prompt, marker=marker,
                           seed=seed)
    cut = train_prompts * pairs_per_prompt
    return write_export(directory, train=rows[:cut], test=rows[cut:], seed=seed, file_format=file_format)


def synthetic_sft_rows(*, prompts: int, marker: str = "sure", seed: int = 0) -> list[dict]:
    """Rows in the export's `sft` format: the assistant's answer always opens with `marker`, then filler words."""
    rng = random.Random(seed)
    rows = []
    for p in range(prompts):
        words = [marker] + [rng.choice(FILLER) for _ in range(rng.randint(4, 9))]
        rows.append({"messages": [{"role": "user", "content": f"Can you tell me about {rng.choice(TOPICS)} number {p}?"},
                                  {"role": "assistant", "content": " ".join(words)}],
                     "prompt_id": p + 1, "response_id": p + 1, "task_id": p + 1, "origin": "best_of_n"})
    return rows


def synthetic_export_of(directory, export_format: str, *, train_prompts: int = 48, test_prompts: int = 16,
                        marker: str = "sure", seed: int = 0):
    """A prompt-disjoint synthetic export of `export_format`: pairs, unpaired (each pair's chosen labelled
    true, its rejected false), sft or prompts; returns its path."""
    from training.data import write_export

    if export_format == "sft":
        rows = synthetic_sft_rows(prompts=train_prompts + test_prompts, marker=marker, seed=seed)
        cut = train_prompts
    else:
        pairs = synthetic_pairs(prompts=train_prompts + test_prompts, pairs_per_prompt=1, marker=marker, seed=seed)
        cut = train_prompts
        if export_format == "pairs":
            rows = pairs
        elif export_format == "prompts":
            rows = [{"prompt": r["prompt"], "prompt_id": r["prompt_id"]} for r in pairs]
        elif export_format == "unpaired":
            rows = []
            for r in pairs:
                rows.append({"prompt": r["prompt"], "completion": r["chosen"], "label": True, "prompt_id": r["prompt_id"]})
                rows.append({"prompt": r["prompt"], "completion": r["rejected"], "label": False,
                             "prompt_id": r["prompt_id"]})
            cut = 2 * train_prompts
        else:
            raise ValueError(f"unknown export format {export_format!r}")
    return write_export(directory, train=rows[:cut], test=rows[cut:], seed=seed, export_format=export_format)
