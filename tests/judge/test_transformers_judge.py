"""The transformers judge batches prompts of different lengths without changing any answer."""
from __future__ import annotations

import threading

import pytest
import torch

from sampling.judge import (
    MAX_DEFAULT_PASSES,
    MIN_SHARED_PREFIX,
    JudgeQuery,
    TransformersJudge,
    chunk_sizes_sharing_prefix,
    judge_messages,
    shared_prefix_length,
)
from sampling.transformers_backend import _render, _render_many


def _queries() -> list[JudgeQuery]:
    out = []
    for i in range(7):
        long = "A long answer that explains itself at length, with code:\n```python\nprint(1)\n```\n" * (1 + i // 2)
        short = f"Short answer {i}."
        messages = judge_messages(conversation=[{"role": "user", "content": f"Question {i}?"}], principle="Be helpful.",
                                  response_a=long if i % 2 else short, response_b=short if i % 2 else long)
        out.append(JudgeQuery(key=i, messages=messages))
    return out


def _alone(judge: TransformersJudge, query: JudgeQuery) -> float:
    """The reference: P("A") from a plain forward pass over the prompt alone, nothing padded or shared."""
    a_id, b_id = judge.letter_ids
    ids = torch.tensor([_render(judge.tokenizer, query.messages)])
    with torch.inference_mode():
        logits = judge.model(input_ids=ids).logits[0, -1].float()
    return torch.softmax(logits[[a_id, b_id]], dim=-1)[0].item()


def test_batched_answers_equal_each_prompt_alone(tiny_model_path):
    judge = TransformersJudge(model=str(tiny_model_path), batch_size=16)
    queries = _queries()
    batched = {a.key: a.p_a for a in judge.judge(queries)}
    judge.batch_size = 1
    alone = {a.key: a.p_a for a in judge.judge(queries)}
    assert sorted(batched) == sorted(alone) == list(range(7))
    for query in queries:
        expected = _alone(judge, query)
        assert abs(batched[query.key] - expected) < 1e-5
        assert abs(alone[query.key] - expected) < 1e-5
    # The prompts really differ in length, so the batch was padded.
    lengths = {len(_render(judge.tokenizer, q.messages)) for q in queries}
    assert len(lengths) >= 4


def _task_queries(tasks: int = 3, k: int = 4) -> list[JudgeQuery]:
    """What a judge run asks: per task every pair of its responses in both orders, under one principle each."""
    out = []
    for t in range(tasks):
        conversation = [{"role": "user", "content": f"Task {t}: how do I merge two dicts in Python? Show an example."}]
        responses = [f"Option {r}: use the union operator.\n\n```python\nmerged = a | b  # {r}\n```\n"
                     + "It keeps the right-hand values.\n" * r for r in range(k)]
        for a in range(k):
            for b in range(a + 1, k):
                principle = ("Prefer the correct response.", "Prefer the concise response.")[(a + b + t) % 2]
                for order, (x, y) in enumerate(((a, b), (b, a))):
                    out.append(JudgeQuery(key=(t, a, b, order), messages=judge_messages(
                        conversation=conversation, principle=principle, response_a=responses[x], response_b=responses[y])))
    return out


def test_prompts_sharing_a_beginning_read_as_each_alone(tiny_model_path):
    judge = TransformersJudge(model=str(tiny_model_path), batch_size=8)
    queries = _task_queries() + [_task_queries(tasks=1)[0]]  # and one prompt twice: nothing of its own after the shared part
    duplicate = JudgeQuery(key="again", messages=queries[-1].messages)
    queries[-1] = duplicate
    encoded = sorted(([q, _render(judge.tokenizer, q.messages), False] for q in queries), key=lambda item: item[1])
    chunks, start = [], 0
    for size in chunk_sizes_sharing_prefix([ids for _, ids, _ in encoded], judge.batch_size):
        chunks.append(encoded[start : start + size])
        start += size
    # Every chunk shares the system message; each task has a chunk of its own that shares its conversation.
    assert start == len(encoded) and max(len(c) for c in chunks) <= judge.batch_size
    assert min(shared_prefix_length([ids for _, ids, _ in c]) for c in chunks) >= MIN_SHARED_PREFIX
    own = [c for c in chunks if len({q.key[0] if isinstance(q.key, tuple) else 0 for q, _, _ in c}) == 1]
    assert {c[0][0].key[0] for c in own if isinstance(c[0][0].key, tuple)} == {0, 1, 2}

    batched = {a.key: a.p_a for a in judge.judge(queries)}
    judge.share_prefix = False
    unshared = {a.key: a.p_a for a in judge.judge(queries)}
    for query in queries:
        expected = _alone(judge, query)
        assert abs(batched[query.key] - expected) < 1e-5, query.key
        assert abs(unshared[query.key] - expected) < 1e-5, query.key
    assert batched["again"] == batched[(0, 0, 1, 0)]


def test_shared_prefix_leaves_every_row_its_last_token():
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2  # identical rows keep their last token to read
    assert shared_prefix_length([[1, 2], [1, 2, 3, 4]]) == 1  # one row is the other's beginning
    assert shared_prefix_length([[7, 1], [8, 1]]) == 0


def test_chunks_join_the_rows_that_begin_most_alike_first():
    task_a = [[0, 0, 0, 5, i] for i in range(3)] + [[0, 0, 0, 6, i] for i in range(3)]
    task_b = [[0, 1, 1, 5, i] for i in range(4)]
    rows = task_a + task_b
    assert chunk_sizes_sharing_prefix(rows, 8) == [6, 4]  # one task per chunk, though 8 would fit across
    assert chunk_sizes_sharing_prefix(rows, 10) == [10]
    assert chunk_sizes_sharing_prefix(rows, 4) == [3, 3, 4]  # a task split where its own rows differ most
    assert chunk_sizes_sharing_prefix(rows, 1) == [1] * 10
    two_response_tasks = [[t, 0, 0, i] for t in range(6) for i in range(2)]  # two prompts per task fill chunks
    assert chunk_sizes_sharing_prefix(two_response_tasks, 8) == [8, 4]
    assert chunk_sizes_sharing_prefix([], 8) == []


def test_passes_run_at_once_read_as_each_prompt_alone(tiny_model_path):
    """On CPU the chunks' forward passes run two at a time on one thread each: same answers, and torch's
    thread count is what it was, for this thread and for threads started later."""
    judge = TransformersJudge(model=str(tiny_model_path), batch_size=3, parallel=2)
    queries = _task_queries(tasks=2) + _queries()
    before = torch.get_num_threads()
    encoded = sorted(_render(judge.tokenizer, q.messages) for q in queries)
    chunks = chunk_sizes_sharing_prefix(encoded, judge.batch_size)
    assert len(chunks) >= 4 and judge.passes_at_once(len(chunks)) == 2
    concurrent = {a.key: a.p_a for a in judge.judge(queries)}
    judge.parallel = 1
    in_turn = {a.key: a.p_a for a in judge.judge(queries)}
    assert sorted(concurrent, key=str) == sorted(in_turn, key=str) == sorted((q.key for q in queries), key=str)
    for query in queries:
        expected = _alone(judge, query)
        assert abs(concurrent[query.key] - expected) < 1e-5, query.key
        assert abs(concurrent[query.key] - in_turn[query.key]) < 1e-6, query.key
    assert torch.get_num_threads() == before
    seen: list[int] = []
    later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert seen == [before]


def test_passes_at_once_follow_the_thread_count(tiny_model_path, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.delenv("JUDGE_CPU_PASSES", raising=False)
    judge = TransformersJudge(model=str(tiny_model_path))
    assert judge.passes_at_once(1) == 1  # one chunk: nothing to run beside it
    assert judge.passes_at_once(100) == min(torch.get_num_threads(), MAX_DEFAULT_PASSES)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(MAX_DEFAULT_PASSES + 4)  # a many-core host
        assert judge.passes_at_once(100) == MAX_DEFAULT_PASSES
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv("JUDGE_CPU_PASSES", "6")
    assert judge.passes_at_once(100) == 6
    for bad in ("two", "0", "-1", "1.5"):
        monkeypatch.setenv("JUDGE_CPU_PASSES", bad)
        with pytest.raises(ValueError, match=r"JUDGE_CPU_PASSES must be a whole number of forward passes, 1 or more"):
            judge.passes_at_once(100)
    monkeypatch.delenv("JUDGE_CPU_PASSES")
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")  # busy-waiting threads would take the cores of passes beside them
    assert judge.passes_at_once(100) == 1
    judge.parallel = 3
    assert judge.passes_at_once(2) == 2 and judge.passes_at_once(100) == 3


def test_prompts_tokenized_together_as_each_alone(tiny_model_path):
    judge = TransformersJudge(model=str(tiny_model_path))
    conversations = [q.messages for q in _queries()]
    assert _render_many(judge.tokenizer, conversations) == [_render(judge.tokenizer, m) for m in conversations]
    assert _render_many(judge.tokenizer, []) == []
