"""One config dataclass per job. Field help texts double as the command line (HfArgumentParser), as in TRL.

Example:
    >>> from training.config import RewardJobConfig
    >>> config = RewardJobConfig(data="exports/12", output_dir="runs/rm", max_steps=100)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Losses TRL 1.16's DPOTrainer implements (trl/trainer/dpo_config.py, `loss_type`).
DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)


@dataclass
class JobConfig:
    """Options shared by the reward-model and the DPO job.

    Args:
        data: export directory (manifest.json plus train/test splits, as `export_preferences` writes it).
        output_dir: where metrics.jsonl, report.json and the model (output_dir/model) go.
        base_model: Hugging Face model id or local path; empty means the project's tiny model.
    """

    data: str = field(metadata={"help": "Export directory: manifest.json, train.jsonl|parquet, test.jsonl|parquet."})
    output_dir: str = field(metadata={"help": "Output directory: metrics.jsonl, report.json, model/."})
    base_model: str = field(
        default="",
        metadata={"help": "Base model: Hugging Face id or local path. Empty: the tiny local model (training/tiny_model.py)."},
    )
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate (AdamW, linear decay)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs over the train split (ignored when max_steps > 0)."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimizer steps (> 0 overrides epochs)."})
    per_device_batch_size: int = field(default=8, metadata={"help": "Pairs per device per step (train and eval)."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Steps to accumulate before an update."})
    max_length: int = field(default=512, metadata={"help": "Truncate prompt plus response to this many tokens."})
    warmup_ratio: float = field(default=0.0, metadata={"help": "Fraction of the steps spent warming up the learning rate."})
    use_lora: bool = field(default=False, metadata={"help": "Train LoRA adapters (peft) instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: str = field(
        default="all-linear", metadata={"help": "Modules LoRA wraps: 'all-linear' or comma-separated names (q_proj,v_proj)."}
    )
    precision: str = field(
        default="auto",
        metadata={"help": "auto (bf16 on a GPU that supports it, float32 on CPU), bf16, fp16 or fp32."},
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in the backward pass (less memory, ~20%% slower)."}
    )
    logging_steps: int = field(default=10, metadata={"help": "Write train metrics every N steps."})
    eval_steps: int = field(default=50, metadata={"help": "Evaluate on the test split every N steps (0: only at the end)."})
    seed: int = field(default=0, metadata={"help": "Seed for weights of new heads, data order and dropout."})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RewardJobConfig(JobConfig):
    """A reward model (TRL RewardTrainer, Bradley-Terry loss) on an export of `pairs`.

    Example:
        python -m training reward --data exports/12 --output_dir runs/rm --max_steps 200
    """

    center_rewards_coefficient: float = field(
        default=0.0, metadata={"help": "Push mean reward towards zero (0 disables; 0.01 as in Eisenstein et al.)."}
    )
    use_margin: bool = field(
        default=True,
        metadata={"help": "Train with the export's `margin` column (vote share of chosen): TRL's loss becomes "
                          "-log sigmoid(r_chosen - r_rejected - margin). false: plain Bradley-Terry loss."},
    )


@dataclass
class DPOJobConfig(JobConfig):
    """A policy trained with DPO (TRL DPOTrainer) on an export of `pairs`.

    Example:
        python -m training dpo --data exports/12 --output_dir runs/dpo --loss_type sigmoid --beta 0.1
    """

    loss_type: str = field(
        default="sigmoid",
        metadata={"help": "DPO loss: " + ", ".join(DPO_LOSS_TYPES) + ". Comma-separate several to combine them."},
    )
    beta: float = field(default=0.1, metadata={"help": "Deviation from the reference model (for ipo: the regulariser)."})
    judge_reward_model: str = field(
        default="",
        metadata={"help": "Reward model (path) judging the win rate of the trained policy vs its base on test prompts."},
    )
    win_rate_prompts: int = field(default=64, metadata={"help": "Held-out prompts to sample for the win rate."})
    max_new_tokens: int = field(default=64, metadata={"help": "Tokens to sample per response for the win rate."})

    def loss_types(self) -> list[str]:
        return [name.strip() for name in self.loss_type.split(",") if name.strip()]


@dataclass
class SFTJobConfig(JobConfig):
    """Supervised fine-tuning (TRL SFTTrainer) on an export of format `sft` (`{"messages": [...]}` rows).

    Each row is split into the prompt (all messages but the last) and the completion (the last, assistant,
    message); the loss is on the completion only. Held-out loss and perplexity are reported before and after.

    Example:
        python -m training sft --data exports/13 --output_dir runs/sft --max_steps 200
    """


@dataclass
class KTOJobConfig(JobConfig):
    """A policy trained with KTO (TRL KTOTrainer) on an export of format `unpaired` (prompt, completion, label).

    Example:
        python -m training kto --data exports/14 --output_dir runs/kto --beta 0.1
    """

    beta: float = field(default=0.1, metadata={"help": "Deviation from the reference model."})
    desirable_weight: float = field(default=1.0, metadata={"help": "Weight of desirable (label true) examples."})
    undesirable_weight: float = field(default=1.0, metadata={"help": "Weight of undesirable (label false) examples."})


@dataclass
class ORPOJobConfig(JobConfig):
    """A policy trained with ORPO (trl.experimental.orpo.ORPOTrainer; no reference model) on `pairs`.

    Example:
        python -m training orpo --data exports/12 --output_dir runs/orpo --beta 0.1
    """

    beta: float = field(default=0.1, metadata={"help": "Weight of the odds-ratio term (lambda in the ORPO paper)."})


@dataclass
class RLJobConfig(JobConfig):
    """The RL step of RLHF: optimise a policy against a reward model on prompts (TRL RLOOTrainer / GRPOTrainer).

    `data` is any export directory; its prompts are used (format `prompts`, `pairs`, `unpaired`, or `sft`,
    whose last message is dropped). Held-out prompts' samples are scored before and after training.

    Example:
        python -m training rloo --data exports/12 --output_dir runs/rloo --reward_model runs/rm/model
    """

    reward_model: str = field(default="", metadata={"help": "Reward model directory (a reward job's model/): required."})
    num_generations: int = field(default=4, metadata={"help": "Samples per prompt (the group RLOO/GRPO compares)."})
    max_new_tokens: int = field(default=32, metadata={"help": "Tokens sampled per completion (training and evaluation)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature while training."})
    beta: float = field(
        default=0.05, metadata={"help": "KL coefficient to the reference (initial) policy; > 0 also records the KL."}
    )
    eval_prompts: int = field(default=64, metadata={"help": "Held-out prompts sampled for the before/after reward."})


def config_errors(config: JobConfig) -> dict[str, str]:
    """Field -> problem, for options that would fail deep inside TRL with a less readable message."""
    errors: dict[str, str] = {}
    if config.learning_rate <= 0:
        errors["learning_rate"] = "must be > 0"
    if config.per_device_batch_size < 1:
        errors["per_device_batch_size"] = "must be >= 1"
    if config.max_length < 8:
        errors["max_length"] = "must be >= 8"
    if config.max_steps <= 0 and config.num_train_epochs <= 0:
        errors["num_train_epochs"] = "must be > 0 when max_steps is not set"
    if config.precision not in ("auto", "bf16", "fp16", "fp32"):
        errors["precision"] = "must be auto, bf16, fp16 or fp32"
    if isinstance(config, DPOJobConfig):
        unknown = [name for name in config.loss_types() if name not in DPO_LOSS_TYPES]
        if unknown or not config.loss_types():
            errors["loss_type"] = f"unknown {unknown or 'empty'}; choose from {', '.join(DPO_LOSS_TYPES)}"
    if isinstance(config, DPOJobConfig | KTOJobConfig | ORPOJobConfig) and config.beta <= 0:
        errors["beta"] = "must be > 0"
    if isinstance(config, RLJobConfig):
        if config.num_generations < 2:
            errors["num_generations"] = "must be >= 2 (RLOO and GRPO compare samples of one prompt)"
        if config.max_new_tokens < 1:
            errors["max_new_tokens"] = "must be >= 1"
        if config.temperature <= 0:
            errors["temperature"] = "must be > 0"
        if config.beta < 0:
            errors["beta"] = "must be >= 0"
        if config.eval_prompts < 1:
            errors["eval_prompts"] = "must be >= 1"
    return errors


# kind -> its config; the one list of kinds (the platform, the command line and the API read it).
JOB_CONFIGS: dict[str, type[JobConfig]] = {
    "sft": SFTJobConfig, "reward": RewardJobConfig, "dpo": DPOJobConfig, "kto": KTOJobConfig,
    "orpo": ORPOJobConfig, "rloo": RLJobConfig, "grpo": RLJobConfig,
}
KINDS = tuple(JOB_CONFIGS)
RL_KINDS = ("rloo", "grpo")
# Export formats each kind trains on.
KIND_FORMATS: dict[str, tuple[str, ...]] = {
    "sft": ("sft",), "reward": ("pairs",), "dpo": ("pairs",), "kto": ("unpaired",), "orpo": ("pairs",),
    "rloo": ("prompts", "pairs", "unpaired", "sft"), "grpo": ("prompts", "pairs", "unpaired", "sft"),
}
KIND_HELP = {
    "sft": "supervised fine-tuning on an sft export (held-out loss and perplexity before/after)",
    "reward": "reward model (Bradley-Terry) on pairs (held-out pairwise accuracy)",
    "dpo": "DPO on pairs (loss_type=sigmoid|ipo|hinge|...; held-out implicit-reward accuracy)",
    "kto": "KTO on an unpaired export (prompt, completion, label)",
    "orpo": "ORPO on pairs (no reference model)",
    "rloo": "RL step: RLOO against a reward model on the project's prompts (mean reward before/after, KL)",
    "grpo": "RL step: GRPO against a reward model on the project's prompts (mean reward before/after, KL)",
}
