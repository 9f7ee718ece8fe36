"""One entry point for every kind of job: the reward and DPO runners (training.jobs) and the
policy ones (training.policy_jobs, which build on training.jobs' helpers), so neither imports the other back."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from training import policy_jobs
from training.config import JOB_CONFIGS, JobConfig
from training.jobs import JobError, run_dpo, run_reward


def run_job(kind: str, config: JobConfig, *, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Run the job of `kind` (one of training.config.KINDS) with its config; return its report."""
    if kind not in JOB_CONFIGS:
        raise JobError(f"kind {kind!r}: expected one of {', '.join(JOB_CONFIGS)}")
    if not isinstance(config, JOB_CONFIGS[kind]):
        raise JobError(f"kind {kind!r} takes a {JOB_CONFIGS[kind].__name__}, not a {type(config).__name__}")
    runners = {"reward": run_reward, "dpo": run_dpo, "sft": policy_jobs.run_sft, "kto": policy_jobs.run_kto,
               "orpo": policy_jobs.run_orpo, "rloo": policy_jobs.run_rl, "grpo": policy_jobs.run_rl}
    if kind in ("rloo", "grpo"):
        return runners[kind](config, kind=kind, callbacks=callbacks)
    return runners[kind](config, callbacks=callbacks)
