"""The policy jobs beside reward and DPO: sft (TRL SFTTrainer), kto (KTOTrainer), orpo (trl.experimental
ORPOTrainer) and the RL step, rloo / grpo (RLOOTrainer / GRPOTrainer against a reward model).

Each writes metrics.jsonl while training, report.json at the end and the policy in output_dir/model, and
evaluates per held-out example before and after training (training.evaluation), so every figure is a count
over a count or a token-weighted mean, never a mean of batch means.

Example:
    >>> from training.config import SFTJobConfig
    >>> from training.policy_jobs import run_sft
    >>> report = run_sft(SFTJobConfig(data="exports/13", output_dir="runs/sft", max_steps=100))
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.config import KTOJobConfig, ORPOJobConfig, RLJobConfig, SFTJobConfig
from training.data import ExportDataError, unique_prompts
from training.jobs import (
    JobError,
    _common_args,
    _load,
    _metrics_callback,
    _model_dtype,
    _pairs_only,
    _peft_config,
    _prepare,
    _quiet_bars_when_embedded,
    _quiet_when_embedded,
    _reference_model,
    _report_head,
    _save_model,
    _train_summary,
    _write_report,
)


def _callbacks(metrics, callbacks: Sequence[Any]) -> list[Any]:
    from training.callbacks import MetricsCallback

    return [metrics, *[c for c in callbacks if not isinstance(c, MetricsCallback)]]


def _finish(trainer, out: Path, report: dict[str, Any], metrics, values: dict[str, Any]) -> dict[str, Any]:
    model_dir = _save_model(trainer, out)
    if trainer.accelerator.is_main_process:
        numeric = {k: v for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if numeric:
            metrics.write({"step": trainer.state.global_step, "split": "test", "epoch": float(trainer.state.epoch or 0),
                           "time": datetime.now(UTC).isoformat(), "values": numeric})
        report["model_dir"] = str(model_dir)
        report["finished_at"] = datetime.now(UTC).isoformat()
        _write_report(out, report)
    trainer.accelerator.wait_for_everyone()
    return report


def _policy(trainer):
    return trainer.accelerator.unwrap_model(trainer.model)


# sft


def _prompt_completion(dataset, where: str):
    """sft rows {"messages": [...]} as prompt (all but the last message) and completion (the last, assistant)."""
    if dataset is None:
        return None
    for index, row in enumerate(dataset):
        messages = row["messages"]
        if len(messages) < 2 or messages[-1].get("role") != "assistant":
            raise ExportDataError(f"{where}: row {index + 1}: 'messages' must end with an assistant message after the prompt")
    return dataset.map(lambda row: {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]},
                       remove_columns=dataset.column_names)


def run_sft(config: SFTJobConfig, *, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Supervised fine-tuning on an sft export; held-out loss and perplexity (token-weighted) before and after."""
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from training.evaluation import completion_loss

    _quiet_bars_when_embedded(callbacks)
    data, base_model, precision = _prepare(config, "sft")
    out = Path(config.output_dir)
    train = _prompt_completion(data.train, f"{config.data} (train)")
    test = _prompt_completion(data.test, f"{config.data} (test)")
    args = SFTConfig(**_common_args(config, has_test=test is not None, precision=precision),
                     completion_only_loss=True, packing=False,
                     model_init_kwargs={"dtype": _model_dtype(config, precision)})
    tokenizer = _load(lambda: AutoTokenizer.from_pretrained(base_model), base_model)
    metrics = _metrics_callback(out, callbacks)
    trainer = _load(lambda: SFTTrainer(model=base_model, args=args, train_dataset=train, eval_dataset=test,
                                       processing_class=tokenizer, peft_config=_peft_config(config, "CAUSAL_LM"),
                                       callbacks=_callbacks(metrics, callbacks)), base_model)
    _quiet_when_embedded(trainer, callbacks)
    report = _report_head("sft", config, data, base_model, precision, args)
    rows = list(test) if test is not None else []

    def held_out() -> dict[str, Any]:
        return completion_loss(_policy(trainer), tokenizer, rows, max_length=config.max_length,
                               batch_size=config.per_device_batch_size)

    before = held_out() if rows else None
    started = time.monotonic()
    result = trainer.train()
    report["train"] = _train_summary(trainer, result, started)
    values: dict[str, Any] = {}
    if rows:
        after = held_out()
        report["test"] = {"examples": len(rows), "before": before, "after": after,
                          "loss_change": after["loss"] - before["loss"]}
        values = {"heldout_loss_before": before["loss"], "heldout_loss_after": after["loss"],
                  "perplexity_before": before["perplexity"], "perplexity_after": after["perplexity"]}
    return _finish(trainer, out, report, metrics, values)


# kto


def _kto_evaluation(policy, reference, tokenizer, rows, config: KTOJobConfig) -> dict[str, Any]:
    """Per held-out example: is the implicit reward beta * (log pi - log pi_ref) on the side of its label?

    Desirable examples count when their reward is > 0, undesirable when < 0; a reward of exactly 0 (every
    example before training) is a tie, counted apart.
    """
    from training.evaluation import completion_logps, proportion

    prompts = [r["prompt"] for r in rows]
    completions = [r["completion"] for r in rows]
    kwargs = {"max_length": config.max_length, "batch_size": config.per_device_batch_size}
    pol = completion_logps(policy, tokenizer, prompts, completions, **kwargs)
    ref = completion_logps(reference, tokenizer, prompts, completions, **kwargs)
    rewards = [config.beta * (p - r) for (p, _), (r, _) in zip(pol, ref, strict=True)]
    correct = ties = 0
    for reward, row in zip(rewards, rows, strict=True):
        if reward == 0:
            ties += 1
        elif (reward > 0) == bool(row["label"]):
            correct += 1
    good = [r for r, row in zip(rewards, rows, strict=True) if row["label"]]
    bad = [r for r, row in zip(rewards, rows, strict=True) if not row["label"]]
    return {"examples": len(rows), "label_accuracy": proportion(correct, len(rows)), "correct": correct, "ties": ties,
            "mean_reward_desirable": sum(good) / len(good) if good else None,
            "mean_reward_undesirable": sum(bad) / len(bad) if bad else None}


def run_kto(config: KTOJobConfig, *, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """KTO on an unpaired export (prompt, completion, label); held-out label accuracy of the implicit reward."""
    from transformers import AutoTokenizer
    from trl import KTOConfig, KTOTrainer

    _quiet_bars_when_embedded(callbacks)
    data, base_model, precision = _prepare(config, "kto")
    out = Path(config.output_dir)
    columns = ["prompt", "completion", "label"]
    train = data.train.select_columns(columns)
    test = data.test.select_columns(columns) if data.test is not None else None
    args = KTOConfig(**_common_args(config, has_test=test is not None, precision=precision), beta=config.beta,
                     desirable_weight=config.desirable_weight, undesirable_weight=config.undesirable_weight,
                     model_init_kwargs={"dtype": _model_dtype(config, precision)})
    tokenizer = _load(lambda: AutoTokenizer.from_pretrained(base_model), base_model)
    metrics = _metrics_callback(out, callbacks)
    trainer = _load(lambda: KTOTrainer(model=base_model, args=args, train_dataset=train, eval_dataset=test,
                                       processing_class=tokenizer, peft_config=_peft_config(config, "CAUSAL_LM"),
                                       callbacks=_callbacks(metrics, callbacks)), base_model)
    _quiet_when_embedded(trainer, callbacks)
    report = _report_head("kto", config, data, base_model, precision, args)
    rows = list(test) if test is not None else []
    reference = _reference_model(base_model, trainer) if rows else None
    before = _kto_evaluation(_policy(trainer), reference, tokenizer, rows, config) if rows else None
    started = time.monotonic()
    result = trainer.train()
    report["train"] = _train_summary(trainer, result, started)
    values: dict[str, Any] = {}
    if rows:
        after = _kto_evaluation(_policy(trainer), reference, tokenizer, rows, config)
        report["test"] = {"examples": len(rows), "label_accuracy": after["label_accuracy"], "before": before, "after": after}
        values = {"final_label_accuracy": after["label_accuracy"]["value"], "final_ties": after["ties"]}
    return _finish(trainer, out, report, metrics, values)


# orpo


def _orpo_evaluation(policy, tokenizer, rows, config: ORPOJobConfig) -> dict[str, Any]:
    """Per held-out pair: is the chosen response's mean token log-likelihood above the rejected one's?

    ORPO's odds ratio is built on these per-token means; ties are counted apart.
    """
    from training.evaluation import completion_logps, pairwise_outcomes

    prompts = [r["prompt"] for r in rows]
    kwargs = {"max_length": config.max_length, "batch_size": config.per_device_batch_size}
    chosen = [s / max(n, 1) for s, n in completion_logps(policy, tokenizer, prompts, [r["chosen"] for r in rows], **kwargs)]
    rejected = [s / max(n, 1) for s, n in completion_logps(policy, tokenizer, prompts, [r["rejected"] for r in rows], **kwargs)]
    outcomes = pairwise_outcomes(chosen, rejected)
    return {**outcomes, "pairs": len(rows), "mean_logp_chosen": sum(chosen) / len(chosen),
            "mean_logp_rejected": sum(rejected) / len(rejected)}


def run_orpo(config: ORPOJobConfig, *, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """ORPO on pairs (no reference model); held-out preference accuracy of the mean log-likelihood."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    _quiet_bars_when_embedded(callbacks)
    data, base_model, precision = _prepare(config, "orpo")
    out = Path(config.output_dir)
    args = ORPOConfig(**_common_args(config, has_test=data.test is not None, precision=precision), beta=config.beta,
                      max_completion_length=config.max_length // 2)
    tokenizer = _load(lambda: AutoTokenizer.from_pretrained(base_model), base_model)
    model = _load(lambda: AutoModelForCausalLM.from_pretrained(base_model, dtype=_model_dtype(config, precision)), base_model)
    metrics = _metrics_callback(out, callbacks)
    trainer = _load(lambda: ORPOTrainer(model=model, args=args, train_dataset=_pairs_only(data.train),
                                        eval_dataset=_pairs_only(data.test), processing_class=tokenizer,
                                        peft_config=_peft_config(config, "CAUSAL_LM"),
                                        callbacks=_callbacks(metrics, callbacks)), base_model)
    _quiet_when_embedded(trainer, callbacks)
    report = _report_head("orpo", config, data, base_model, precision, args)
    rows = list(data.test) if data.test is not None else []
    before = _orpo_evaluation(_policy(trainer), tokenizer, rows, config) if rows else None
    started = time.monotonic()
    result = trainer.train()
    report["train"] = _train_summary(trainer, result, started)
    values: dict[str, Any] = {}
    if rows:
        after = _orpo_evaluation(_policy(trainer), tokenizer, rows, config)
        report["test"] = {"pairs": len(rows), "preference_accuracy": after["accuracy"], "before": before, "after": after}
        values = {"final_accuracy": after["accuracy"]["value"], "final_ties": after["ties"]}
    return _finish(trainer, out, report, metrics, values)


# rl: rloo / grpo


def _rl_evaluation(policy, reference, tokenizer, judge, judge_tokenizer, prompts, config: RLJobConfig) -> dict[str, Any]:
    """Held-out prompts: one sampled response each, its reward under the reward model, and the KL to the
    reference (sum over the response's tokens of log pi - log pi_ref, averaged over prompts)."""
    from training.evaluation import completion_logps, reward_scores, sample_responses

    texts = sample_responses(policy, tokenizer, prompts, max_new_tokens=config.max_new_tokens, seed=config.seed)
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    scores = reward_scores(judge, judge_tokenizer, [list(p) + c for p, c in zip(prompts, completions, strict=True)],
                           max_length=config.max_length)
    kwargs = {"max_length": config.max_length, "batch_size": config.per_device_batch_size}
    pol = completion_logps(policy, tokenizer, prompts, completions, **kwargs)
    ref = completion_logps(reference, tokenizer, prompts, completions, **kwargs)
    kls = [p - r for (p, _), (r, _) in zip(pol, ref, strict=True)]
    return {"prompts": len(prompts), "mean_reward": sum(scores) / len(scores), "rewards": scores,
            "kl_to_reference": sum(kls) / len(kls), "mean_length_chars": sum(len(t) for t in texts) / len(texts),
            "examples": [{"prompt": p[-1]["content"], "response": t} for p, t in list(zip(prompts, texts, strict=True))[:3]]}


def run_rl(config: RLJobConfig, *, kind: str = "rloo", callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Optimise the base policy against `reward_model` with RLOO or GRPO on the export's train prompts;
    mean reward and KL of held-out prompts' samples before and after."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _quiet_bars_when_embedded(callbacks)
    if not config.reward_model or not (Path(config.reward_model) / "config.json").exists():
        raise JobError(f"reward_model {config.reward_model!r}: no saved reward model there (a reward job's model/)")
    if config.per_device_batch_size % config.num_generations:
        raise JobError(f"per_device_batch_size ({config.per_device_batch_size}) must be a multiple of num_generations "
                       f"({config.num_generations}): each step holds whole groups of one prompt's samples")
    data, base_model, precision = _prepare(config, kind)
    export_format = data.manifest["format"]
    train_prompts = unique_prompts(data.train, export_format)
    test_prompts = unique_prompts(data.test, export_format)[:config.eval_prompts]
    if not train_prompts:
        raise ExportDataError(f"{config.data}: no prompts in the train split")
    out = Path(config.output_dir)
    common = _common_args(config, has_test=False, precision=precision)
    common.pop("max_length")
    common.update(eval_strategy="no", eval_steps=None)  # held-out evaluation is ours, before and after
    rl = {"num_generations": config.num_generations, "max_completion_length": config.max_new_tokens,
          "temperature": config.temperature, "beta": config.beta,
          "model_init_kwargs": {"dtype": _model_dtype(config, precision)}}
    if kind == "grpo":
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer
    else:
        from trl import RLOOConfig as Config
        from trl import RLOOTrainer as Trainer
    args = Config(**common, **rl)
    tokenizer = _load(lambda: AutoTokenizer.from_pretrained(base_model), base_model)
    judge_tokenizer = _load(lambda: AutoTokenizer.from_pretrained(config.reward_model), config.reward_model)
    judge = _load(lambda: AutoModelForSequenceClassification.from_pretrained(
        config.reward_model, num_labels=1, dtype=torch.float32), config.reward_model)
    judge.eval()
    metrics = _metrics_callback(out, callbacks)
    train = Dataset.from_list([{"prompt": p} for p in train_prompts])
    trainer = _load(lambda: Trainer(model=base_model, reward_funcs=judge, args=args, train_dataset=train,
                                    processing_class=tokenizer, reward_processing_classes=judge_tokenizer,
                                    peft_config=_peft_config(config, "CAUSAL_LM"),
                                    callbacks=_callbacks(metrics, callbacks)), base_model)
    _quiet_when_embedded(trainer, callbacks)
    report = _report_head(kind, config, data, base_model, precision, args)
    report["data"]["train_prompts"], report["data"]["test_prompts"] = len(train_prompts), len(test_prompts)
    report["reward_model"] = config.reward_model
    device = trainer.accelerator.device
    judge.to(device)
    reference = _reference_model(base_model, trainer) if test_prompts else None
    before = (_rl_evaluation(_policy(trainer), reference, tokenizer, judge, judge_tokenizer, test_prompts, config)
              if test_prompts else None)
    started = time.monotonic()
    result = trainer.train()
    report["train"] = _train_summary(trainer, result, started)
    report["train"]["reward_curve"] = [[int(r["step"]), r["reward"]] for r in _history(trainer, "reward")]
    report["train"]["kl_curve"] = [[int(r["step"]), r["kl"]] for r in _history(trainer, "kl")]
    values: dict[str, Any] = {}
    if test_prompts:
        after = _rl_evaluation(_policy(trainer), reference, tokenizer, judge, judge_tokenizer, test_prompts, config)
        report["test"] = _rl_comparison(before, after)
        values = {"heldout_reward_before": before["mean_reward"], "heldout_reward_after": after["mean_reward"],
                  "heldout_kl_after": after["kl_to_reference"]}
    return _finish(trainer, out, report, metrics, values)


def _history(trainer, key: str) -> list[dict[str, Any]]:
    return [row for row in trainer.state.log_history if key in row and "step" in row]


def _rl_comparison(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Before/after on the same held-out prompts, and the per-prompt win rate of after over before (ties apart)."""
    from training.evaluation import pairwise_outcomes

    outcomes = pairwise_outcomes(after["rewards"], before["rewards"])
    return {"prompts": before["prompts"], "mean_reward_before": before["mean_reward"],
            "mean_reward_after": after["mean_reward"], "kl_to_reference_after": after["kl_to_reference"],
            "win_rate_after_vs_before": outcomes["accuracy"], "wins": outcomes["wins"], "ties": outcomes["ties"],
            "losses": outcomes["losses"], "before": before, "after": after}
