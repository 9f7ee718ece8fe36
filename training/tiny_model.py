"""A tiny chat model the project builds itself, since no weights can be downloaded in tests.

A real architecture (Llama, two layers), a real byte-level BPE tokenizer trained on the corpus
shipped in training/data/, and a chat template; random weights, deterministic for a seed. Saved
with `save_pretrained`, so everything downstream loads it exactly as it would load a hub model.

Example:
    >>> from training.tiny_model import ensure_tiny_model
    >>> path = ensure_tiny_model("/tmp/tiny-chat")  # builds once, then reuses
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"
SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
# Each message is wrapped in role tokens and closed by <|end|>, which is also the EOS token, so
# generation stops at the end of the assistant's turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
MARKER = "tiny_model_complete"


def default_tiny_model_dir() -> Path:
    """Where the tiny model is cached: $TINY_MODEL_DIR, else $XDG_CACHE_HOME (or ~/.cache)/annotation-platform/.

    Outside the checkout, so `git clean`, a fresh clone or `make clean` does not rebuild it for nothing
    and nothing generated lands in the work tree.
    """
    if os.environ.get("TINY_MODEL_DIR"):
        return Path(os.environ["TINY_MODEL_DIR"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "annotation-platform" / "tiny-chat-model"


def build_tiny_model(output_dir: str | os.PathLike, *, seed: int = 0, vocab_size: int = 512,
                     hidden_size: int = 64, layers: int = 2) -> Path:
    """Train the tokenizer, initialise the model with `seed`, and save both to `output_dir`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train([str(CORPUS)], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|bos|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        padding_side="left",
        model_max_length=512,
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / MARKER).write_text(f"seed={seed}\n")
    return out


def ensure_tiny_model(output_dir: str | os.PathLike, *, seed: int = 0) -> Path:
    """Build the tiny model at `output_dir` unless it is already there. Safe across processes."""
    out = Path(output_dir)
    if (out / MARKER).exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two workers starting at once build it once
        if not (out / MARKER).exists():
            build_tiny_model(out, seed=seed)
    return out
