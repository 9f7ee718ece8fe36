"""The transformers judge batches prompts of different lengths without changing any answer."""
from __future__ import annotations

import torch

from sampling.judge import JudgeQuery, TransformersJudge, judge_messages
from sampling.transformers_backend import _render


def _queries() -> list[JudgeQuery]:
    out = []
    for i in range(7):
        long = "A long answer that explains itself at length, with code:\n```python\nprint(1)\n```\n" * (1 + i // 2)
        short = f"Short answer {i}."
        messages = judge_messages(conversation=[{"role": "user", "content": f"Question {i}?"}], principle="Be helpful.",
                                  response_a=long if i % 2 else short, response_b=short if i % 2 else long)
        out.append(JudgeQuery(key=i, messages=messages))
    return out


def test_batched_answers_equal_each_prompt_alone(tiny_model_path):
    judge = TransformersJudge(model=str(tiny_model_path), batch_size=16)
    queries = _queries()
    batched = {a.key: a.p_a for a in judge.judge(queries)}
    judge.batch_size = 1
    alone = {a.key: a.p_a for a in judge.judge(queries)}
    assert sorted(batched) == sorted(alone) == list(range(7))
    # The reference: a plain forward pass over each prompt with nothing padded.
    a_id, b_id = judge.letter_ids
    for query in queries:
        ids = torch.tensor([_render(judge.tokenizer, query.messages)])
        with torch.inference_mode():
            logits = judge.model(input_ids=ids).logits[0, -1].float()
        expected = torch.softmax(logits[[a_id, b_id]], dim=-1)[0].item()
        assert abs(batched[query.key] - expected) < 1e-5
        assert abs(alone[query.key] - expected) < 1e-5
    # The prompts really differ in length, so the batch was padded.
    lengths = {len(_render(judge.tokenizer, q.messages)) for q in queries}
    assert len(lengths) >= 4
