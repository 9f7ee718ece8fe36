"""The prompt-disjoint train/test split: a prompt's every row lands in one split, the same one every time."""
from __future__ import annotations

import hashlib

SPLIT_RULE = "prompt-disjoint: test if sha256('<seed>:<prompt_id>')[:8]/2**64 < test_fraction"


def split_of(*, prompt_id: int, seed: int, test_fraction: float) -> str:
    """'test' or 'train' for a prompt: deterministic, so a prompt always lands in one split."""
    digest = hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"
