"""Fine-tune the tiny model for a few steps into a judge whose preference is known (real training, no stubs).

rule "marker": answer the letter of the response containing MARKER; rule "first": always answer
"A" (a judge with a strong position bias). Training prompts are the real judge prompts
(sampling.judge.judge_messages through the model's chat template), the loss the cross-entropy of
the next token at the end of the prompt.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path

from sampling.judge import DEFAULT_SYSTEM_PROMPT, judge_messages

MARKER = "zq"
CONSTITUTION = "# Our principles\n\n- Prefer the response that is most helpful.\n- Prefer the response that is honest.\n"
# A project's own judge prompt (Project.judge_prompt_template), short so that training on CPU is quick.
SHORT_TEMPLATE = "{conversation}\nPrinciple: {principle}\nA: {response_a}\nB: {response_b}\nBetter (A or B):"


MARKED_TEXT = f"{MARKER} {MARKER} {MARKER}"  # the response a marker judge prefers
PLAIN_TEXTS = ("ok ok ok", "no no no", "hm hm hm", "la la la")


def _pair_messages(i: int, a: str, b: str, principle: str) -> list[dict]:
    return judge_messages(conversation=[{"role": "user", "content": f"question {i}?"}], principle=principle,
                          response_a=a, response_b=b, template=SHORT_TEMPLATE, system_prompt=DEFAULT_SYSTEM_PROMPT)


def _examples(rng: random.Random, rule: str) -> list[tuple[list[dict], str]]:
    """One pair in both orders with the letter the judge should answer for each."""
    principles = [line[2:] for line in CONSTITUTION.splitlines() if line.startswith("- ")]
    i, principle = rng.randrange(1000), rng.choice(principles)
    plain = rng.choice(PLAIN_TEXTS)
    other = MARKED_TEXT if rule == "marker" or rng.random() < 0.5 else rng.choice([t for t in PLAIN_TEXTS if t != plain])
    if rule == "marker":  # both orders in one batch: only the content can lower the loss
        return [(_pair_messages(i, other, plain, principle), "A"), (_pair_messages(i, plain, other, principle), "B")]
    return [(_pair_messages(i, other, plain, principle), "A"), (_pair_messages(i, plain, other, principle), "A")]


def train_judge(base: Path, out: Path, *, rule: str, steps: int = 60, batch: int = 16, lr: float = 3e-3, seed: int = 0) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.train()
    letter = {k: tokenizer.encode(k, add_special_tokens=False)[0] for k in ("A", "B")}
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        rows, targets = [], []
        while len(rows) < batch:
            for messages, answer in _examples(rng, rule):
                text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                rows.append(tokenizer(text, add_special_tokens=False)["input_ids"])
                targets.append(letter[answer])
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, width - len(row):] = torch.tensor(row)
            mask[r, width - len(row):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1, :]
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(targets))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    for extra in ("chat_template.jinja",):
        if (base / extra).exists() and not (out / extra).exists():
            shutil.copy(base / extra, out / extra)
    return out
