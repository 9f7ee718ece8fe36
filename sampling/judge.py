"""Judge backends: a model says which of two responses better follows one principle (AI feedback).

No Django here: annotation.services.judge decides what to ask, calls a backend, and writes the
answers idempotently. Each query is one judge prompt (chat messages) and comes back as the
probability that the model answers "A" rather than "B":

- transformers: batched forward passes over right-padded prompts (no padding mask: the model is
  causal), on CPU several passes at once, reading the next-token probabilities of the tokens "A"
  and "B" (normalised over the two);
- openai: chat completions with `logprobs: true, top_logprobs: 5, max_tokens: 1`, reading the
  tokens "A" and "B" among the top log-probabilities. A server that returns no log-probabilities:
  the answer letter is a hard label (1 or 0). Neither letter: the query failed, with the text.

The judge prompt (docs/judge.md) is a system message, then one user message from a template
with the placeholders {conversation}, {principle}, {response_a} and {response_b}; a project can
override the template (`Project.judge_prompt_template`).

Example:
    >>> judge = TransformersJudge(model="/path/to/model")
    >>> q = JudgeQuery(key=1, messages=judge_messages(conversation=[{"role": "user", "content": "Hi"}],
    ...                principle="Be kind.", response_a="Hello!", response_b="Go away."))
    >>> judge.judge([q])[0].p_a
    0.73
"""
from __future__ import annotations

import logging
import math
import os
import string
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .base import ModelLoadError

logger = logging.getLogger(__name__)

LETTERS = ("A", "B")
PLACEHOLDERS = frozenset({"conversation", "principle", "response_a", "response_b"})

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful, impartial judge of an AI assistant's responses. You compare two responses "
    "to the same conversation under one principle and answer with a single letter."
)
DEFAULT_TEMPLATE = """Conversation:
{conversation}

Principle: {principle}

Response A:
{response_a}

Response B:
{response_b}

Which response better follows the principle? Answer with one letter, A or B."""


def template_problem(template: str) -> str:
    """What is wrong with a judge prompt template ("" when usable): it must name every placeholder, and only those."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        return f"is not a valid template ({exc}); write literal braces as {{{{ and }}}}"
    unknown = names - PLACEHOLDERS
    if unknown:
        allowed = ", ".join("{" + n + "}" for n in sorted(PLACEHOLDERS))
        return f"unknown placeholder(s) {', '.join('{' + n + '}' for n in sorted(unknown))}; allowed: {allowed}"
    missing = PLACEHOLDERS - names
    if missing:
        return f"must contain {', '.join('{' + n + '}' for n in sorted(missing))}"
    return ""


def render_conversation(messages: list[dict[str, Any]]) -> str:
    """The conversation quoted as 'Role: content' lines (system messages included)."""
    return "\n".join(f"{str(m.get('role', 'user')).capitalize()}: {m.get('content', '')}" for m in messages if isinstance(m, dict))


def judge_messages(*, conversation: list[dict[str, Any]], principle: str, response_a: str, response_b: str,
                   template: str = "", system_prompt: str = "") -> list[dict[str, str]]:
    """The judge prompt for one order of one pair: the system message, then the filled template."""
    body = (template or DEFAULT_TEMPLATE).format(
        conversation=render_conversation(conversation), principle=principle, response_a=response_a, response_b=response_b
    )
    return [{"role": "system", "content": system_prompt or DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": body}]


@dataclass(frozen=True)
class JudgeQuery:
    key: Hashable  # the caller's name for this query, given back on its answer
    messages: list[dict[str, str]]


@dataclass
class LetterAnswer:
    """The judge's answer to one query: p_a = P("A") / (P("A") + P("B")), or why there is none.

    `transient` failures (rate limits, 5xx, an unreachable server) are worth retrying later;
    other failures are final (`text` keeps what the model said instead of a letter).
    """

    key: Hashable
    p_a: float | None = None
    hard: bool = False  # a letter without probabilities
    text: str = ""
    error: str = ""
    transient: bool = False
    truncated: bool = False

    @property
    def failed(self) -> bool:
        return self.p_a is None


def _two_way(logit_a: float, logit_b: float) -> float:
    """softmax over the two letters' log-probabilities (or logits), numerically safe."""
    top = max(logit_a, logit_b)
    ea, eb = math.exp(logit_a - top), math.exp(logit_b - top)
    return ea / (ea + eb)


class TransformersJudge:
    """Next-token probabilities of "A" and "B" from a causal LM, `batch_size` prompts per forward pass.

    With `share_prefix` (the default) the beginning a chunk's prompts share goes through the model once.
    On CPU `parallel` forward passes run at once (passes_at_once).
    """

    name = "transformers"

    def __init__(self, *, model: str, revision: str = "", batch_size: int = 16, share_prefix: bool = True,
                 parallel: int = 0) -> None:
        from .transformers_backend import load_model

        self.model_id = model
        self.model, self.tokenizer = load_model(model, revision)
        self.batch_size = max(1, batch_size)
        self.share_prefix = share_prefix
        self.parallel = max(0, parallel)  # forward passes at once on CPU; 0: one per torch thread (passes_at_once)
        self.letter_ids = letter_token_ids(self.tokenizer)

    def judge(self, queries: list[JudgeQuery]) -> list[LetterAnswer]:
        from .transformers_backend import _free_cuda, _is_cuda_oom, _render_within, context_length

        # Cut to the model's context keeping the end: the question and the letter cue come last in the template.
        rendered = _render_within(self.tokenizer, [query.messages for query in queries], context_length(self.model, self.tokenizer))
        encoded = [(query, ids, truncated) for query, (ids, truncated) in zip(queries, rendered, strict=True)]
        if self.share_prefix:
            # Prompts that begin alike side by side (token ids in lexicographic order): one task's prompts
            # share the system message and the conversation, a pair's two orders the principle too.
            encoded.sort(key=lambda item: item[1])
        else:
            encoded.sort(key=lambda item: -len(item[1]))  # similar lengths together: less padding
        answers: list[LetterAnswer] = []
        start, size = 0, self.batch_size
        plan = self._chunk_sizes(encoded, size)
        passes = self.passes_at_once(len(plan))
        if passes > 1:
            return self._forward_concurrently(encoded, plan, passes)
        while start < len(encoded):
            chunk = encoded[start : start + plan[0]]
            try:
                answers.extend(self._forward(chunk))
            except Exception as exc:
                if not _is_cuda_oom(exc) or size == 1:
                    raise
                _free_cuda()
                size = max(1, size // 2)  # as generation does: halve the batch and try again
                logger.warning("CUDA out of memory: retrying with %d judge prompts per forward pass", size)
                plan = self._chunk_sizes(encoded[start:], size)
                continue
            start += plan.pop(0)
        return answers

    def passes_at_once(self, chunks: int) -> int:
        """How many of `chunks` forward passes run at once: on CPU `parallel`, else JUDGE_CPU_PASSES from
        the environment, else torch's thread count up to MAX_DEFAULT_PASSES; each pass then runs on
        its share of the threads. Elsewhere one (a GPU runs them in turn anyway).

        The default is one at a time under OMP_WAIT_POLICY=ACTIVE: the busy-waiting OpenMP threads
        then take the cores from passes beside them (measured 172 comparisons/s with two passes at
        once against 216 one at a time; docs/judge.md).
        """
        if self.model.device.type != "cpu":
            return 1
        import torch

        wanted = self.parallel or _passes_from_environment()
        if not wanted:
            busy_waiting = os.environ.get("OMP_WAIT_POLICY", "").upper() == "ACTIVE"
            wanted = 1 if busy_waiting else min(torch.get_num_threads(), MAX_DEFAULT_PASSES)
        return max(1, min(wanted, chunks))

    def _forward_concurrently(self, encoded: list[tuple[JudgeQuery, list[int], bool]], plan: list[int],
                              passes: int) -> list[LetterAnswer]:
        """The chunks' forward passes `passes` at a time, each on threads // passes of torch's threads.

        A judge prompt's operations are small (a tiny model, ~400 positions): split over two threads
        each waits for the other at every operation, so on 2 cores one pass at a time with 2 threads
        ran no faster than with 1. Two passes at once, one thread each, keep both cores computing
        (torch releases the GIL inside its operations). The answers are the same: each row's arithmetic
        does not depend on what runs beside it.
        """
        import torch

        threads = torch.get_num_threads()
        chunks, start = [], 0
        for size in plan:
            chunks.append(encoded[start : start + size])
            start += size
        try:
            with ThreadPoolExecutor(max_workers=passes, thread_name_prefix="judge-forward",
                                    initializer=torch.set_num_threads, initargs=(max(1, threads // passes),)) as pool:
                answered = list(pool.map(self._forward, chunks))
        finally:
            # torch.set_num_threads in a thread also sets the count threads started later begin with.
            torch.set_num_threads(threads)
        return [answer for chunk_answers in answered for answer in chunk_answers]

    def _chunk_sizes(self, encoded: list[tuple[JudgeQuery, list[int], bool]], size: int) -> list[int]:
        if self.share_prefix:
            return chunk_sizes_sharing_prefix([ids for _, ids, _ in encoded], size)
        return [min(size, len(encoded) - start) for start in range(0, len(encoded), size)]

    def _forward(self, chunk: list[tuple[JudgeQuery, list[int], bool]]) -> list[LetterAnswer]:
        """One chunk's answers: the chunk's shared beginning through the model once, then every row's rest.

        The beginning's keys and values (its KV cache) are repeated for each row, so a row reads exactly
        what it would alone; only the positions after it are computed per row.
        """
        import torch

        shared = shared_prefix_length([ids for _, ids, _ in chunk]) if self.share_prefix and len(chunk) > 1 else 0
        device = self.model.device
        cache = None
        with torch.inference_mode():
            if shared >= MIN_SHARED_PREFIX:
                from transformers import DynamicCache

                cache = DynamicCache(config=self.model.config)
                self.model(input_ids=torch.tensor([chunk[0][1][:shared]], device=device), cache=cache, use_cache=True,
                           logits_to_keep=1)
                cache.batch_repeat_interleave(len(chunk))
            else:
                shared = 0
            # Right padding and no attention mask: in a causal model no real token attends to the padding after
            # it, so each row's last real position reads as it would alone, and without a mask the attention
            # takes its fused causal kernel instead of materialising a padded mask (2x the batched throughput
            # on CPU; left padding with a mask made batch 16 no faster than batch 1). After a shared
            # beginning the model builds the causal mask offset by the cache's length itself.
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            rests = [ids[shared:] for _, ids, _ in chunk]
            width = max(len(rest) for rest in rests)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            for row, rest in enumerate(rests):
                input_ids[row, : len(rest)] = torch.tensor(rest, dtype=torch.long)
            last = torch.tensor([len(rest) - 1 for rest in rests], dtype=torch.long)
            # Only the rows' last positions go through the LM head (most of a big-vocabulary model's cost).
            keep = torch.unique(last)
            extra = {"cache": cache, "use_cache": True} if cache is not None else {}
            if cache is not None and device.type == "cpu":
                # The mask after a shared beginning, prepared once for every layer and row: the
                # beginning in full, the row's own positions causally. Additive (0 or the dtype's
                # minimum), as the CPU attention kernel would otherwise convert a boolean one in
                # every layer (17% of a pass); on a GPU the model builds its own, as before.
                dtype = self.model.dtype
                mask = torch.full((width, shared + width), torch.finfo(dtype).min, dtype=dtype, device=device)
                mask[:, :shared] = 0
                mask[:, shared:].triu_(1)
                extra["attention_mask"] = mask[None, None].expand(len(chunk), 1, width, shared + width)
            logits = self.model(input_ids=input_ids.to(device), logits_to_keep=keep.to(device), **extra).logits
            logits = logits[torch.arange(len(chunk), device=device), torch.searchsorted(keep, last).to(device)].float()
        pair = torch.log_softmax(logits, dim=-1)[:, list(self.letter_ids)].cpu().tolist()
        return [
            LetterAnswer(key=query.key, p_a=_two_way(la, lb), truncated=truncated)
            for (query, _, truncated), (la, lb) in zip(chunk, pair, strict=True)
        ]


def _passes_from_environment() -> int:
    """JUDGE_CPU_PASSES as a number of passes (0: unset); a value that is not one is refused by name."""
    raw = os.environ.get("JUDGE_CPU_PASSES", "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"JUDGE_CPU_PASSES must be a whole number of forward passes, 1 or more, not {raw!r}")
    return int(raw)


# Passes at once by default on a CPU of many threads: each pass holds its own activations and cache,
# which a large model on a many-core host would multiply; more are one setting away (JUDGE_CPU_PASSES).
MAX_DEFAULT_PASSES = 4

# A shorter shared beginning is not worth a forward pass of its own.
MIN_SHARED_PREFIX = 16


def shared_prefix_length(rows: list[list[int]]) -> int:
    """Tokens every row begins with, less one where a row would have none of its own left (its last token is read)."""
    first, last = min(rows), max(rows)  # in lexicographic order the extremes share the least
    common = len(os.path.commonprefix([first, last]))
    return min(common, min(len(row) for row in rows) - 1)


def chunk_sizes_sharing_prefix(rows: list[list[int]], size: int) -> list[int]:
    """How many consecutive rows (token ids, sorted) each forward pass takes, at most `size` each.

    Neighbours that begin most alike are joined first (a pair's two orders, then one task's prompts,
    then tasks together), so a chunk keeps to one conversation where it can and small groups, such as
    tasks of two responses, still fill a chunk. Rows sorted, the beginning a run of them shares is the
    least their neighbours share, so each boundary is looked at once, longest first.
    """
    n = len(rows)
    boundaries = sorted(range(1, n), key=lambda i: -len(os.path.commonprefix([rows[i - 1], rows[i]])))
    first_of, last_of = list(range(n)), list(range(n))  # a run's bounds, kept at its two ends
    for i in boundaries:  # between rows i-1 and i: the run ending at i-1 and the run starting at i
        left, right = first_of[i - 1], last_of[i]
        if right - left + 1 <= size:
            last_of[left], first_of[right] = right, left
    sizes, start = [], 0
    while start < n:
        sizes.append(last_of[start] - start + 1)
        start = last_of[start] + 1
    return sizes


def letter_token_ids(tokenizer: Any) -> tuple[int, int]:
    """The token ids of "A" and "B"; ModelLoadError when either is not a single token."""
    ids = []
    for letter in LETTERS:
        encoded = tokenizer.encode(letter, add_special_tokens=False)
        if len(encoded) != 1:
            raise ModelLoadError(f"the model's tokenizer has no single token for '{letter}' (it gives {encoded})")
        ids.append(encoded[0])
    return ids[0], ids[1]


class OpenAIJudge:
    """Chat completions with one token and its top log-probabilities, `concurrency` requests at a time."""

    name = "openai"

    def __init__(self, *, model: str, base_url: str, api_key: str = "", concurrency: int = 8, timeout: float = 120.0,
                 max_retries: int = 5, backoff: float = 0.5) -> None:
        from .openai_backend import OpenAIBackend

        # The generation backend's client: its retries, backoff scaling and error wording.
        self._http = OpenAIBackend(model=model, base_url=base_url, api_key=api_key, concurrency=concurrency,
                                   timeout=timeout, max_retries=max_retries, backoff=backoff)
        self.model = model

    def judge(self, queries: list[JudgeQuery]) -> list[LetterAnswer]:
        with self._http._client() as client, ThreadPoolExecutor(max_workers=self._http.concurrency) as pool:
            return list(pool.map(lambda q: self._one(client, q), queries))

    def _one(self, client: Any, query: JudgeQuery) -> LetterAnswer:
        import openai

        extra_headers = None if self._http.api_key else {"Authorization": openai.Omit()}
        try:
            completion = client.chat.completions.create(
                model=self.model, messages=query.messages, max_tokens=1, logprobs=True, top_logprobs=5,
                temperature=0, extra_headers=extra_headers,
            )
        except openai.OpenAIError as exc:
            error, transient = self._http._failure(exc)
            return LetterAnswer(key=query.key, error=error, transient=transient)
        return answer_from_choice(query.key, (completion.choices or [None])[0])


def _letter(text: str) -> str:
    stripped = (text or "").strip().strip("\"'*().:").upper()
    return stripped if stripped in LETTERS else ""


def answer_from_choice(key: Hashable, choice: Any) -> LetterAnswer:
    """Read one chat completion choice: top log-probabilities of "A"/"B", else the letter, else failed."""
    if choice is None:
        return LetterAnswer(key=key, error="the server answered without choices", text="")
    message = getattr(choice, "message", None)
    text = str(getattr(message, "content", "") or "")
    found: dict[str, float] = {}
    try:
        first = choice.logprobs.content[0]
        candidates = list(first.top_logprobs or []) or [first]
        for entry in candidates:
            letter, logprob = _letter(str(entry.token)), float(entry.logprob)
            if letter and letter not in found and math.isfinite(logprob):
                found[letter] = logprob
    except (AttributeError, IndexError, TypeError, ValueError, KeyError):
        found = {}  # no or malformed log-probabilities: fall back to the letter itself
    if found:
        # A letter missing from the top 5 has a negligible probability next to one present.
        la, lb = found.get("A", -math.inf), found.get("B", -math.inf)
        p_a = 1.0 if lb == -math.inf else 0.0 if la == -math.inf else _two_way(la, lb)
        return LetterAnswer(key=key, p_a=p_a, text=text)
    letter = _letter(text)
    if letter:
        return LetterAnswer(key=key, p_a=1.0 if letter == "A" else 0.0, hard=True, text=text)
    return LetterAnswer(key=key, error=f"the judge answered neither A nor B: {text[:200]!r}", text=text[:1000])


def get_judge(*, backend: str, model: str, revision: str = "", batch_size: int = 16,
              openai: dict[str, Any] | None = None) -> TransformersJudge | OpenAIJudge:
    """The judge backend for a run's settings (transformers models load once per process)."""
    if backend == "transformers":
        return TransformersJudge(model=model, revision=revision, batch_size=batch_size)
    if backend == "openai":
        return OpenAIJudge(model=model, **(openai or {}))
    raise ModelLoadError(f"unknown judge backend '{backend}' (expected transformers or openai)")
