"""Held-out figures are whole counts over whole counts (issue 11 item 4), on the training package alone."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.config import DPOJobConfig, RewardJobConfig
from training.evaluation import dpo_implicit_reward_evaluation, format_proportion, pairwise_outcomes, proportion, wilson_interval
from training.jobs import run_dpo, run_reward
from training.synthetic import synthetic_export

ROOT = Path(__file__).resolve().parents[2]


def test_pairwise_outcomes_count_wins_ties_and_losses_apart():
    outcomes = pairwise_outcomes([1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 1.0, 1.0])
    assert (outcomes["wins"], outcomes["ties"], outcomes["losses"], outcomes["n"]) == (2, 1, 1, 4)
    assert outcomes["accuracy"]["value"] == 0.5 and outcomes["accuracy"]["successes"] == 2
    assert outcomes["decisive"]["n"] == 3 and outcomes["decisive"]["successes"] == 2


def test_the_wilson_interval_takes_only_whole_counts():
    with pytest.raises(TypeError, match="whole count"):
        wilson_interval(4.5, 9)  # what a mean of batch means times n used to give
    assert proportion(3, 9)["ci95"] == list(wilson_interval(3, 9))
    assert format_proportion(proportion(3, 9)) == "0.333 (3/9, 95% CI 0.121-0.646)"


@pytest.fixture(scope="module")
def nine_pairs(tmp_path_factory):
    """9 held-out pairs (not a multiple of the eval batch of 8), 16 train pairs."""
    return synthetic_export(tmp_path_factory.mktemp("nine"), train_prompts=8, test_prompts=9, pairs_per_prompt=1)


@pytest.mark.slow
def test_dpo_accuracy_on_9_pairs_with_eval_batch_8_is_an_exact_count_and_ties_before_training(
        nine_pairs, tiny_model_path, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = DPOJobConfig(data=str(nine_pairs), output_dir=str(tmp_path), base_model=str(tiny_model_path),
                          max_steps=6, learning_rate=2e-3, beta=0.1, eval_steps=0, per_device_batch_size=8)
    report = run_dpo(config)
    test = report["test"]
    before, after = test["before"], test["after"]
    # Before training the policy is the reference: every pair ties (it used to read accuracy 0.000).
    assert (before["wins"], before["ties"], before["losses"]) == (0, 9, 0)
    accuracy = test["implicit_reward_accuracy"]
    assert accuracy["n"] == 9 and isinstance(accuracy["successes"], int)
    assert accuracy["value"] == accuracy["successes"] / 9
    assert after["wins"] + after["ties"] + after["losses"] == 9
    assert accuracy["ci95"] == list(wilson_interval(accuracy["successes"], 9))
    # The same count, recomputed one pair at a time from the saved policy: batching changes nothing.
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    policy = AutoModelForCausalLM.from_pretrained(tmp_path / "model", dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    rows = [json.loads(line) for line in (nine_pairs / "test.jsonl").read_text().splitlines()]
    one_by_one = dpo_implicit_reward_evaluation(policy, reference, tokenizer, rows, beta=0.1, batch_size=1)
    assert one_by_one["wins"] == accuracy["successes"]


@pytest.mark.slow
def test_reward_accuracy_on_9_pairs_is_an_exact_count_and_the_margin_is_used_or_not(nine_pairs, tiny_model_path,
                                                                                    tmp_path):
    reports = {}
    for use_margin in (True, False):
        config = RewardJobConfig(data=str(nine_pairs), output_dir=str(tmp_path / str(use_margin)),
                                 base_model=str(tiny_model_path), max_steps=4, learning_rate=3e-3, eval_steps=0,
                                 per_device_batch_size=8, use_margin=use_margin)
        reports[use_margin] = run_reward(config)
    for report in reports.values():
        accuracy = report["test"]["accuracy"]
        assert accuracy["n"] == 9 and accuracy["value"] == accuracy["successes"] / 9
        assert report["test"]["wins"] + report["test"]["ties"] + report["test"]["losses"] == 9
    assert reports[True]["margin"].startswith("the export's margin column")
    assert reports[False]["margin"].startswith("none")
    # Same seed and data, different loss: the margin reached the trainer.
    assert reports[True]["train"]["final_loss"] != reports[False]["train"]["final_loss"]


def test_python_m_training_help_prints_the_kinds_and_exits_0():
    result = subprocess.run([sys.executable, "-m", "training", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for kind in ("sft", "reward", "dpo", "kto", "orpo", "rloo", "grpo"):
        assert f"  {kind} " in result.stdout


@pytest.mark.slow
def test_an_export_without_test_rows_trains_with_a_loud_warning(tiny_model_path, tmp_path):
    export = synthetic_export(tmp_path / "e", train_prompts=4, test_prompts=0)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "training", "reward", "--data", str(export), "--output_dir", str(out),
         "--base_model", str(tiny_model_path), "--max_steps", "1", "--eval_steps", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING" in result.stderr and "no test rows" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert "test" not in report and report["warnings"] and "nothing is held out" in report["warnings"][0]
