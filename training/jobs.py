"""The jobs, one TRL trainer each, on an export directory: sft (SFTTrainer), reward (RewardTrainer), dpo and its
loss types (DPOTrainer), kto (KTOTrainer), orpo (trl.experimental ORPOTrainer), and the RL step, rloo / grpo
(RLOOTrainer / GRPOTrainer against a reward model, on the export's prompts).

Each writes output_dir/metrics.jsonl while training, output_dir/report.json at the end and the model
with `save_pretrained` into output_dir/model (LoRA: adapters in output_dir/adapter, merged weights in model/).
Runs the same in one process or under `accelerate launch` (evaluation and saving on the main process).

Example:
    >>> from training.config import RewardJobConfig
    >>> from training.jobs import run_reward
    >>> report = run_reward(RewardJobConfig(data="exports/12", output_dir="runs/rm", max_steps=100))
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.config import (
    KIND_FORMATS,
    DPOJobConfig,
    JobConfig,
    RewardJobConfig,
    config_errors,
)
from training.data import PAIR_COLUMNS, ExportDataError, load_export


class JobError(ValueError):
    """The job cannot start with these options (bad base model, bad option value); the message says why."""


def default_base_model() -> str:
    """The tiny local model (built on first use), so a job runs with no download."""
    from training.tiny_model import default_tiny_model_dir, ensure_tiny_model

    return str(ensure_tiny_model(default_tiny_model_dir()))


def resolve_base_model(name: str) -> str:
    if not name:
        return default_base_model()
    looks_local = name.startswith(("/", ".", "~")) or os.path.exists(name)
    if looks_local:
        path = Path(name).expanduser()
        if not (path / "config.json").exists():
            raise JobError(f"base model {name!r}: no config.json there (not a saved model directory)")
        return str(path)
    return name


def resolve_precision(precision: str) -> str:
    """bf16 on a GPU that supports it, float32 on CPU: set deliberately, since TRL's configs default to bf16."""
    import torch

    if precision != "auto":
        return precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def _common_args(config: JobConfig, *, has_test: bool, precision: str) -> dict[str, Any]:
    import torch

    eval_on = has_test and config.eval_steps > 0
    return {
        "output_dir": str(Path(config.output_dir) / "checkpoints"),
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.num_train_epochs,
        "max_steps": config.max_steps,
        "per_device_train_batch_size": config.per_device_batch_size,
        "per_device_eval_batch_size": config.per_device_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "warmup_steps": config.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the steps
        "max_length": config.max_length,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": not torch.cuda.is_available(),
        # transformers 5 name; TRL's configs default the old alias (gradient_checkpointing) to True.
        "activation_checkpointing": config.gradient_checkpointing,
        "logging_strategy": "steps",
        "logging_steps": config.logging_steps,
        "logging_first_step": True,
        "eval_strategy": "steps" if eval_on else "no",
        "eval_steps": config.eval_steps if eval_on else None,
        "save_strategy": "no",  # the final model is saved once, below; no checkpoints to fill the disk
        "report_to": "none",
        "seed": config.seed,
        "data_seed": config.seed,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "ddp_find_unused_parameters": False,  # every parameter takes part in the loss; skip DDP's extra graph walk
    }


def _model_dtype(config: JobConfig, precision: str):
    import torch

    # Full fine-tuning keeps float32 master weights (bf16 is autocast); LoRA can hold the frozen base in bf16.
    if config.use_lora and precision == "bf16":
        return torch.bfloat16
    if config.use_lora and precision == "fp16":
        return torch.float16
    return torch.float32


def _peft_config(config: JobConfig, task_type: str):
    if not config.use_lora:
        return None
    from peft import LoraConfig

    targets = config.lora_target_modules
    return LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout, task_type=task_type,
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()],
    )


NO_TEST_WARNING = "the export has no test rows: nothing is held out, so this job reports no held-out evaluation"


def _prepare(config: JobConfig, kind: str = "reward") -> tuple[Any, str, str]:
    errors = config_errors(config)
    if errors:
        raise JobError("; ".join(f"{name}: {problem}" for name, problem in errors.items()))
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_export(config.data, cache_dir=str(out / ".datasets-cache"), formats=KIND_FORMATS[kind], kind=kind)
    if data.test is None or len(data.test) == 0:
        data.test = None
        # Loud on purpose: a job without held-out data cannot show it learnt anything.
        print(f"WARNING: {config.data}: {NO_TEST_WARNING}", file=sys.stderr)
    base_model = resolve_base_model(config.base_model)
    return data, base_model, resolve_precision(config.precision)


def _pairs_only(dataset, *, margin: bool = False):
    if dataset is None:
        return None
    columns = list(PAIR_COLUMNS) + (["margin"] if margin and "margin" in dataset.column_names else [])
    return dataset.select_columns(columns)


def _load(loader: Callable[[], Any], base_model: str):
    try:
        return loader()
    except (OSError, ValueError) as exc:
        raise JobError(f"base model {base_model!r} cannot be loaded: {exc}") from exc


def _save_model(trainer, out: Path) -> Path:
    """Save with save_pretrained into out/model; LoRA adapters also go to out/adapter, merged weights to model/."""
    model_dir = out / "model"
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):  # a peft model
        if trainer.accelerator.is_main_process:
            model.save_pretrained(out / "adapter")
        model = model.merge_and_unload()
    if trainer.accelerator.is_main_process:
        model.save_pretrained(model_dir)
        trainer.processing_class.save_pretrained(model_dir)
    return model_dir


def _train_summary(trainer, result, started: float) -> dict[str, Any]:
    metrics = dict(result.metrics)
    return {
        "steps": int(trainer.state.global_step),
        "epochs": float(trainer.state.epoch or 0.0),
        "final_loss": metrics.get("train_loss"),
        "runtime_s": round(time.monotonic() - started, 3),
        "samples_per_second": metrics.get("train_samples_per_second"),
        "world_size": trainer.accelerator.num_processes,
    }


def _write_report(out: Path, report: dict[str, Any]) -> None:
    # Scratch directories of this run: no checkpoints are kept (save_strategy "no"), and the datasets cache
    # is only needed while loading.
    for scratch in ("checkpoints", ".datasets-cache"):
        shutil.rmtree(out / scratch, ignore_errors=True)
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(report, indent=2, default=str))
    tmp.replace(out / "report.json")  # readers never see half a report


def _report_head(kind: str, config: JobConfig, data, base_model: str, precision: str, args) -> dict[str, Any]:
    import torch
    import transformers
    import trl

    return {
        "kind": kind,
        "config": config.to_dict(),
        "base_model": base_model,
        "precision": precision,
        "effective": {"bf16": args.bf16, "fp16": args.fp16, "activation_checkpointing": args.activation_checkpointing,
                      "use_cpu": args.use_cpu, "max_steps": args.max_steps},
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "data": {
            "directory": str(config.data), "project": data.manifest.get("project"),
            "train_rows": len(data.train), "test_rows": len(data.test) if data.test is not None else 0,
        },
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        "warnings": [NO_TEST_WARNING] if data.test is None else [],
    }


def run_reward(config: RewardJobConfig, *, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train a reward model on the export's train split and evaluate it on its test split; return the report."""
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from training.callbacks import MetricsCallback
    from training.evaluation import reward_model_evaluation

    _quiet_bars_when_embedded(callbacks)
    data, base_model, precision = _prepare(config, "reward")
    out = Path(config.output_dir)
    args = RewardConfig(
        **_common_args(config, has_test=data.test is not None, precision=precision),
        center_rewards_coefficient=config.center_rewards_coefficient or None,
        model_init_kwargs={"dtype": _model_dtype(config, precision)},
    )
    tokenizer = _load(lambda: AutoTokenizer.from_pretrained(base_model), base_model)
    metrics = _metrics_callback(out, callbacks)
    trainer = _load(lambda: RewardTrainer(
        model=base_model, args=args, train_dataset=_pairs_only(data.train, margin=config.use_margin),
        eval_dataset=_pairs_only(data.test, margin=config.use_margin),
        processing_class=tokenizer, peft_config=_peft_config(config, "SEQ_CLS"),
        callbacks=[metrics, *[c for c in callbacks if not isinstance(c, MetricsCallback)]],
    ), base_model)
    _quiet_when_embedded(trainer, callbacks)
    started = time.monotonic()
    result = trainer.train()
    report = _report_head("reward", config, data, base_model, precision, args)
    report["margin"] = ("the export's margin column (loss -log sigmoid(r_c - r_r - margin))"
                        if config.use_margin and "margin" in data.train.column_names else "none (plain Bradley-Terry)")
    report["train"] = _train_summary(trainer, result, started)
    model_dir = _save_model(trainer, out)
    if trainer.accelerator.is_main_process:
        if data.test is not None:
            model = trainer.accelerator.unwrap_model(trainer.model)
            report["test"] = reward_model_evaluation(model, tokenizer, list(data.test), max_length=config.max_length,
                                                     batch_size=config.per_device_batch_size)
            metrics.write({"step": trainer.state.global_step, "split": "test", "epoch": float(trainer.state.epoch or 0),
                           "time": datetime.now(UTC).isoformat(),
                           "values": {"final_accuracy": report["test"]["accuracy"]["value"],
                                      "baseline_longer_wins": report["test"]["baseline_longer_wins"]["value"]}})
        report["model_dir"] = str(model_dir)
        report["finished_at"] = datetime.now(UTC).isoformat()
        _write_report(out, report)
    trainer.accelerator.wait_for_everyone()
    return report


def _metrics_callback(out: Path, callbacks: Sequence[Any]):
    from training.callbacks import MetricsCallback

    given = [c for c in callbacks if isinstance(c, MetricsCallback)]
    return given[0] if given else MetricsCallback(out / "metrics.jsonl")


def _quiet_bars_when_embedded(callbacks: Sequence[Any]) -> None:
    """A caller with its own callbacks (the platform) shows its own progress: no loading/tokenizing/saving bars."""
    if callbacks:
        import datasets
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()


def _quiet_when_embedded(trainer, callbacks: Sequence[Any]) -> None:
    """A caller that passes its own callbacks (the platform) records the metrics; don't also print each log dict."""
    from transformers.trainer_callback import PrinterCallback

    if callbacks:
        trainer.remove_callback(PrinterCallback)


def run_dpo(config: DPOJobConfig, *, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train a policy with DPO on the export's train split; evaluate implicit-reward accuracy and win rate."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from training.callbacks import MetricsCallback

    _quiet_bars_when_embedded(callbacks)
    data, base_model, precision = _prepare(config, "dpo")
    if config.judge_reward_model and not (Path(config.judge_reward_model) / "config.json").exists():
        raise JobError(f"judge_reward_model {config.judge_reward_model!r}: no saved model there")
    out = Path(config.output_dir)
    args = DPOConfig(
        **_common_args(config, has_test=data.test is not None, precision=precision),
        loss_type=config.loss_types(),
        beta=config.beta,
        model_init_kwargs={"dtype": _model_dtype(config, precision)},
    )
    tokenizer = _load(lambda: AutoTokenizer.from_pretrained(base_model), base_model)
    metrics = _metrics_callback(out, callbacks)
    trainer = _load(lambda: DPOTrainer(
        model=base_model, args=args, train_dataset=_pairs_only(data.train), eval_dataset=_pairs_only(data.test),
        processing_class=tokenizer, peft_config=_peft_config(config, "CAUSAL_LM"),
        callbacks=[metrics, *[c for c in callbacks if not isinstance(c, MetricsCallback)]],
    ), base_model)
    _quiet_when_embedded(trainer, callbacks)
    report = _report_head("dpo", config, data, base_model, precision, args)
    test_rows = list(data.test) if data.test is not None else []
    reference = _reference_model(base_model, trainer) if test_rows else None
    before, before_exact = {}, None
    if test_rows:
        before = trainer.evaluate()
        before_exact = _dpo_exact(trainer, reference, tokenizer, test_rows, config)
    started = time.monotonic()
    result = trainer.train()
    report["train"] = _train_summary(trainer, result, started)
    after = trainer.evaluate() if test_rows else {}
    model_dir = _save_model(trainer, out)
    if trainer.accelerator.is_main_process:
        if test_rows:
            after_exact = _dpo_exact(trainer, reference, tokenizer, test_rows, config)
            keys = ("rewards/margins", "rewards/chosen", "rewards/rejected", "loss")
            report["test"] = {
                "pairs": len(test_rows),
                # per-pair outcomes of beta * (log pi - log pi_ref), chosen vs rejected; ties apart
                "implicit_reward_accuracy": after_exact["accuracy"],
                "before": before_exact, "after": after_exact,
                # TRL's own eval metrics (means of batch means), kept for the curves, not for accuracy
                "trl_before": {k: before.get(f"eval_{k}") for k in keys},
                "trl_after": {k: after.get(f"eval_{k}") for k in keys},
            }
            metrics.write({"step": trainer.state.global_step, "split": "test", "epoch": float(trainer.state.epoch or 0),
                           "time": datetime.now(UTC).isoformat(),
                           "values": {"final_accuracy": after_exact["accuracy"]["value"],
                                      "final_ties": after_exact["ties"]}})
            if config.judge_reward_model:
                report["test"]["win_rate_vs_base"] = _win_rate(config, data, trainer, tokenizer, base_model,
                                                               AutoModelForCausalLM, AutoModelForSequenceClassification)
                metrics.write({"step": trainer.state.global_step, "split": "test",
                               "epoch": float(trainer.state.epoch or 0), "time": datetime.now(UTC).isoformat(),
                               "values": {"win_rate_vs_base": report["test"]["win_rate_vs_base"]["win_rate"]["value"]}})
        report["model_dir"] = str(model_dir)
        report["finished_at"] = datetime.now(UTC).isoformat()
        _write_report(out, report)
    trainer.accelerator.wait_for_everyone()
    return report


def _reference_model(base_model: str, trainer):
    """The frozen starting policy, loaded afresh (float32) for the per-example evaluations."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32).to(trainer.accelerator.device)
    model.eval()
    return model


def _dpo_exact(trainer, reference, tokenizer, rows, config: DPOJobConfig) -> dict[str, Any]:
    from training.evaluation import dpo_implicit_reward_evaluation

    policy = trainer.accelerator.unwrap_model(trainer.model)
    return dpo_implicit_reward_evaluation(policy, reference, tokenizer, rows, beta=config.beta,
                                          max_length=config.max_length, batch_size=config.per_device_batch_size)


def _win_rate(config: DPOJobConfig, data, trainer, tokenizer, base_model: str, causal_cls, seqcls_cls) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from training.evaluation import policy_win_rate

    device = trainer.accelerator.device
    seen: set[str] = set()
    prompts = []
    for row in data.test:  # each held-out prompt once
        key = json.dumps(row["prompt"], sort_keys=True)
        if key not in seen:
            seen.add(key)
            prompts.append(row["prompt"])
        if len(prompts) >= config.win_rate_prompts:
            break
    policy = causal_cls.from_pretrained(Path(config.output_dir) / "model").to(device)
    base = causal_cls.from_pretrained(base_model).to(device)
    judge = seqcls_cls.from_pretrained(config.judge_reward_model, num_labels=1).to(device)
    judge_tokenizer = AutoTokenizer.from_pretrained(config.judge_reward_model)
    return policy_win_rate(policy=policy, base=base, tokenizer=tokenizer, judge=judge, judge_tokenizer=judge_tokenizer,
                           prompts=prompts, max_new_tokens=config.max_new_tokens, seed=config.seed)


__all__ = ["ExportDataError", "JobError", "run_dpo", "run_reward"]
