"""Sampling with Hugging Face transformers: batched, left-padded, seeded, GPU-ready.

The model is loaded once per worker process (cache keyed by model, revision and dtype); CUDA
with bfloat16 when present, CPU float32 otherwise. Several prompts go into one `generate` call
with their `n` samples each; prompts are sorted by length first so a batch pads little. On CUDA
out-of-memory the batch is halved and retried.

Example:
    >>> backend = TransformersBackend(model="/path/to/model")
    >>> backend.generate([PromptInput(1, [{"role": "user", "content": "Hi"}])],
    ...                  SamplingParams(n=4, temperature=0.8, top_p=0.95, max_new_tokens=64, seed=0))
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from .base import ModelLoadError, PromptInput, PromptResult, Sample, SamplingParams, with_system_prompt

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
# Context length when neither the config nor the tokenizer gives a usable one.
FALLBACK_CONTEXT = 2048

_CACHE: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_CACHE_LOCK = threading.Lock()
_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def _weight_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


def model_fingerprint(model: str) -> str:
    """The revision to record for `model`: sha256 of local weights, the cached hub commit, or "main".

    Hashing reads every weight file once per process (memoised by path, size and mtime).
    """
    path = Path(model)
    if path.is_dir():
        files = _weight_files(path)
        if not files:
            return ""
        digest = hashlib.sha256()
        for file in files:
            stat = file.stat()
            key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
            if key not in _FINGERPRINTS:
                h = hashlib.sha256()
                with open(file, "rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        h.update(block)
                _FINGERPRINTS[key] = h.hexdigest()
            digest.update(f"{file.relative_to(path)}:{_FINGERPRINTS[key]}\n".encode())
        return "sha256:" + digest.hexdigest()
    try:  # a hub id already in the local cache: pin the commit we would load
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(model, local_files_only=True)
        return Path(snapshot).name
    except Exception:  # noqa: BLE001  (not cached or not a hub id: the worker resolves "main")
        return "main"


def device_and_dtype() -> tuple[str, Any]:
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16
    return "cpu", torch.float32


def load_model(model: str, revision: str = "") -> tuple[Any, Any]:
    """(model, tokenizer), loaded once per process. Raises ModelLoadError with the reason."""
    device, dtype = device_and_dtype()
    key = (model, revision, str(dtype))
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        local = Path(model).is_dir()
        if local and revision.startswith("sha256:"):
            actual = model_fingerprint(model)
            if actual != revision:
                raise ModelLoadError(
                    f"the weights at {model} changed since the run was created (recorded {revision}, found {actual})"
                )
        hub_revision = None if local or not revision else revision
        try:
            tokenizer = AutoTokenizer.from_pretrained(model, revision=hub_revision)
            loaded = AutoModelForCausalLM.from_pretrained(model, revision=hub_revision, dtype=dtype)
        except Exception as exc:  # noqa: BLE001  (any loading failure ends the run with its reason)
            raise ModelLoadError(f"cannot load model '{model}': {type(exc).__name__}: {exc}") from exc
        loaded.to(device)
        loaded.eval()
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        # One model at a time per worker: a GPU rarely holds two.
        _CACHE.clear()
        if device == "cuda":
            torch.cuda.empty_cache()
        _CACHE[key] = (loaded, tokenizer)
        logger.info("loaded model %s (revision %s) on %s as %s", model, revision or "-", device, dtype)
        return loaded, tokenizer


def context_length(model: Any, tokenizer: Any) -> int:
    candidates = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    usable = [c for c in candidates if isinstance(c, int) and 0 < c < 10_000_000]
    return min(usable) if usable else FALLBACK_CONTEXT


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    return _render_many(tokenizer, [messages])[0]


def _render_within(tokenizer: Any, conversations: list[list[dict[str, str]]], room: int) -> list[tuple[list[int], bool]]:
    """Each conversation's prompt ids cut to its last `room` tokens (the latest turn and the cue to
    answer come last), with whether it was cut."""
    return [(ids[-room:], True) if len(ids) > room else (ids, False) for ids in _render_many(tokenizer, conversations)]


def _render_many(tokenizer: Any, conversations: list[list[dict[str, str]]]) -> list[list[int]]:
    """Each conversation's prompt token ids, ending with the assistant's turn. The texts are tokenized
    in one call: a fast tokenizer encodes a batch on all cores, outside the GIL."""
    if not conversations:
        return []
    if getattr(tokenizer, "chat_template", None):
        texts = [tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) for messages in conversations]
        return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    # A base model without a chat template: a plain transcript ending with the assistant's turn.
    texts = ["".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:" for messages in conversations]
    return [list(ids) for ids in tokenizer(texts)["input_ids"]]


class TransformersBackend:
    name = "transformers"

    def __init__(self, *, model: str, revision: str = "") -> None:
        self.model_id = model
        self.revision = revision
        self.model, self.tokenizer = load_model(model, revision)

    def generate(self, prompts: list[PromptInput], params: SamplingParams) -> list[PromptResult]:
        context = context_length(self.model, self.tokenizer)
        room = context - params.max_new_tokens
        if room < 1:
            reason = (
                f"max_new_tokens={params.max_new_tokens} leaves no room for the prompt in the model's "
                f"context of {context} tokens"
            )
            return [PromptResult(prompt_id=p.prompt_id, error=reason) for p in prompts]

        rendered = _render_within(self.tokenizer, [with_system_prompt(p.messages, params.system_prompt) for p in prompts], room)
        encoded = [(prompt, ids, truncated) for prompt, (ids, truncated) in zip(prompts, rendered, strict=True)]
        # Longest first, so each generate call pads little and an OOM shows up on the first call.
        encoded.sort(key=lambda item: (-len(item[1]), item[0].prompt_id))

        results: list[PromptResult] = []
        start = 0
        batch_size = max(1, params.batch_size)
        while start < len(encoded):
            chunk = encoded[start : start + batch_size]
            try:
                results.extend(self._generate_chunk(chunk, params))
            except Exception as exc:
                if not _is_cuda_oom(exc):
                    raise
                _free_cuda()
                if batch_size == 1:
                    results.extend(
                        PromptResult(prompt_id=p.prompt_id, error="CUDA out of memory with one prompt per generate call")
                        for p, _, _ in chunk
                    )
                    start += len(chunk)
                    continue
                batch_size = max(1, batch_size // 2)
                logger.warning("CUDA out of memory: retrying with %d prompts per generate call", batch_size)
                continue
            start += len(chunk)
        return results

    def _generate_chunk(self, chunk: list[tuple[PromptInput, list[int], bool]], params: SamplingParams) -> list[PromptResult]:
        import torch

        tokenizer, model = self.tokenizer, self.model
        device = model.device
        pad_id = tokenizer.pad_token_id
        width = max(len(ids) for _, ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (_, ids, _) in enumerate(chunk):  # left padding: every prompt ends at the last column
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[row, width - len(ids) :] = 1
        # Each prompt repeated n times, so greedy decoding (temperature 0) can also give n samples.
        input_ids = input_ids.repeat_interleave(params.n, dim=0).to(device)
        attention = attention.repeat_interleave(params.n, dim=0).to(device)

        eos_ids = _eos_ids(model, tokenizer)
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": pad_id,
            "eos_token_id": sorted(eos_ids) or None,
        }
        # generate() itself decodes greedily; with a temperature the draw is made by SeededSampler,
        # whose random stream is the sample's own (see there), so the batch does not change it.
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.temperature > 0:
            seeds = [sample_seed(seed=params.seed, prompt_ids=ids, index=i) for _, ids, _ in chunk for i in range(params.n)]
            from transformers import LogitsProcessorList

            sampler = SeededSampler(temperature=params.temperature, top_p=params.top_p, seeds=seeds, start=width)
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        min_new = int(params.extra.get("min_new_tokens", 0) or 0)
        if min_new:
            kwargs["min_new_tokens"] = min(min_new, params.max_new_tokens)

        with torch.inference_mode():
            output = model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        generated = output[:, width:].cpu().tolist()

        results = []
        for index, (prompt, _, truncated) in enumerate(chunk):
            result = PromptResult(prompt_id=prompt.prompt_id, prompt_truncated=truncated)
            for tokens in generated[index * params.n : (index + 1) * params.n]:
                stop_at = next((i for i, tok in enumerate(tokens) if tok in eos_ids), None)
                if stop_at is None:
                    content, finish, count = tokens, "length", len(tokens)
                else:
                    content, finish, count = tokens[:stop_at], "stop", stop_at + 1
                text = tokenizer.decode(content, skip_special_tokens=True)
                result.samples.append(Sample(text=text, finish_reason=finish, token_count=count))
                result.tokens += count
            results.append(result)
        return results


def sample_seed(*, seed: int, prompt_ids: list[int], index: int) -> int:
    """The random stream of one sample: from the run's seed, the prompt as the model sees it, and the
    sample's index, so nothing else (batch size, batch neighbours, prompt ids, worker) changes it."""
    digest = hashlib.blake2b(f"{seed}:{index}:".encode() + ",".join(map(str, prompt_ids)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # torch seeds are below 2**63


class SeededSampler:
    """A logits processor that samples each row (one sample of one prompt) from its own random stream.

    generate()'s own sampling draws from one global generator for the whole batch, so a sample
    depends on how many rows came before it: the same seed gave other samples with another batch
    size. Here temperature and top-p are transformers' own warpers; the draw is an inverse-CDF
    lookup of a uniform from the row's torch.Generator; the chosen token is returned as the only
    finite score, which generate() (greedy) then takes. Uniforms are drawn in blocks of BLOCK
    steps, the same for every row, so a row's stream never depends on the batch either.

    On CPU (float32) a sample is then the same whatever the batch; on a GPU in bfloat16 the logits
    themselves move slightly with the batch's shape, so a sample can still differ after a near tie.
    """

    BLOCK = 64

    def __init__(self, *, temperature: float, top_p: float, seeds: list[int], start: int) -> None:
        import torch
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        self.warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
        if top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        self.start = start  # the prompts' padded width: step = generated length so far
        self.block: Any = None

    def _uniforms(self, step: int, device: Any) -> Any:
        import torch

        if step % self.BLOCK == 0 or self.block is None:
            self.block = torch.stack(
                [torch.rand(self.BLOCK, generator=g, dtype=torch.float64) for g in self.generators]
            ).to(device)
        return self.block[:, step % self.BLOCK]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        step = input_ids.shape[1] - self.start
        warped = self.warpers(input_ids, scores)
        cdf = torch.softmax(warped.double(), dim=-1).cumsum(dim=-1)
        target = self._uniforms(step, cdf.device) * cdf[:, -1]
        # right=True: the first token whose cumulative probability exceeds the draw (never one of probability 0).
        tokens = torch.searchsorted(cdf, target.unsqueeze(1), right=True).clamp_(max=cdf.shape[-1] - 1)
        chosen = torch.full_like(scores, -float("inf"))
        return chosen.scatter_(1, tokens, 0.0)


def _is_cuda_oom(exc: Exception) -> bool:
    import torch

    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom_type is not None and isinstance(exc, oom_type)) or "CUDA out of memory" in str(exc)


def _free_cuda() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def clear_cache() -> None:
    """Forget loaded models (tests, or a worker switching models)."""
    with _CACHE_LOCK:
        _CACHE.clear()
    _free_cuda()


if os.environ.get("TOKENIZERS_PARALLELISM") is None:
    # Celery's prefork pool forks after import: tokenizers' threads must not be started before.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
