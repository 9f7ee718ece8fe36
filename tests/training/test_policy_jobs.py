"""sft, kto, orpo and the RL step (rloo, grpo) on the tiny model: real training on CPU, small steps."""
from __future__ import annotations

import json

import pytest

from training.__main__ import main
from training.config import KTOJobConfig, ORPOJobConfig, RewardJobConfig, RLJobConfig, SFTJobConfig
from training.jobs import run_reward
from training.run import run_job
from training.synthetic import synthetic_export_of

pytestmark = pytest.mark.slow


def _weights_changed(model_dir, base_dir) -> bool:
    import torch
    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    base = AutoModelForCausalLM.from_pretrained(base_dir).state_dict()
    name = "model.layers.0.mlp.down_proj.weight"
    return not torch.equal(trained[name], base[name])


def test_sft_on_an_sft_export_lowers_held_out_loss_and_perplexity(tiny_model_path, tmp_path):
    export = synthetic_export_of(tmp_path / "sft", "sft", train_prompts=24, test_prompts=8)
    config = SFTJobConfig(data=str(export), output_dir=str(tmp_path / "out"), base_model=str(tiny_model_path),
                          max_steps=12, learning_rate=3e-3, eval_steps=0, per_device_batch_size=8)
    report = run_job("sft", config)
    before, after = report["test"]["before"], report["test"]["after"]
    assert before["tokens"] == after["tokens"] > 0 and report["test"]["examples"] == 8
    assert after["loss"] < before["loss"] and after["perplexity"] < before["perplexity"]
    assert report["train"]["samples_per_second"] > 0
    assert (tmp_path / "out" / "model" / "config.json").exists()


def test_kto_on_an_unpaired_export_runs_and_changes_the_weights(tiny_model_path, tmp_path):
    export = synthetic_export_of(tmp_path / "kto", "unpaired", train_prompts=16, test_prompts=4)
    config = KTOJobConfig(data=str(export), output_dir=str(tmp_path / "out"), base_model=str(tiny_model_path),
                          max_steps=4, learning_rate=3e-3, eval_steps=0, per_device_batch_size=8)
    report = run_job("kto", config)
    assert _weights_changed(tmp_path / "out" / "model", tiny_model_path)
    test = report["test"]
    assert test["examples"] == 8 and test["before"]["ties"] == 8  # policy == reference before training
    assert test["label_accuracy"]["n"] == 8 and isinstance(test["label_accuracy"]["successes"], int)


def test_orpo_on_pairs_runs_and_changes_the_weights(tiny_model_path, tmp_path):
    export = synthetic_export_of(tmp_path / "orpo", "pairs", train_prompts=16, test_prompts=4)
    config = ORPOJobConfig(data=str(export), output_dir=str(tmp_path / "out"), base_model=str(tiny_model_path),
                           max_steps=4, learning_rate=3e-3, eval_steps=0, per_device_batch_size=8)
    report = run_job("orpo", config)
    assert _weights_changed(tmp_path / "out" / "model", tiny_model_path)
    assert report["test"]["pairs"] == 4 and report["test"]["preference_accuracy"]["n"] == 4


@pytest.fixture(scope="module")
def marker_reward_model(tiny_model_path, tmp_path_factory):
    """A reward model trained on the learnable rule 'the preferred response contains "sure"'."""
    root = tmp_path_factory.mktemp("rl")
    export = synthetic_export_of(root / "pairs", "pairs", train_prompts=24, test_prompts=9)
    config = RewardJobConfig(data=str(export), output_dir=str(root / "rm"), base_model=str(tiny_model_path),
                             max_steps=12, learning_rate=3e-3, eval_steps=0, per_device_batch_size=8)
    report = run_reward(config)
    assert report["test"]["accuracy"]["successes"] >= 6  # it learnt the rule, mostly
    return root, root / "rm" / "model"


def test_rloo_raises_the_held_out_mean_reward_and_records_reward_and_kl(marker_reward_model, tiny_model_path):
    root, reward_model = marker_reward_model
    prompts = synthetic_export_of(root / "prompts", "prompts", train_prompts=24, test_prompts=9)
    config = RLJobConfig(data=str(prompts), output_dir=str(root / "rloo"), base_model=str(tiny_model_path),
                         reward_model=str(reward_model), max_steps=8, learning_rate=1e-3, per_device_batch_size=8,
                         num_generations=4, max_new_tokens=16, eval_prompts=9, logging_steps=2)
    report = run_job("rloo", config)
    test = report["test"]
    assert test["prompts"] == 9
    assert test["mean_reward_after"] > test["mean_reward_before"]
    assert test["before"]["kl_to_reference"] == 0.0 and test["kl_to_reference_after"] != 0.0
    assert test["win_rate_after_vs_before"]["n"] == 9
    assert report["train"]["reward_curve"] and report["train"]["kl_curve"]  # recorded while training
    metrics = [json.loads(line) for line in (root / "rloo" / "metrics.jsonl").read_text().splitlines()]
    assert any("reward" in r["values"] and "kl" in r["values"] for r in metrics if r["split"] == "train")
    assert report["train"]["samples_per_second"] > 0
    assert _weights_changed(root / "rloo" / "model", tiny_model_path)


def test_grpo_runs_against_the_reward_model(marker_reward_model, tiny_model_path):
    root, reward_model = marker_reward_model
    prompts = synthetic_export_of(root / "prompts-g", "prompts", train_prompts=8, test_prompts=2)
    config = RLJobConfig(data=str(prompts), output_dir=str(root / "grpo"), base_model=str(tiny_model_path),
                         reward_model=str(reward_model), max_steps=2, learning_rate=1e-3, per_device_batch_size=4,
                         num_generations=2, max_new_tokens=8, eval_prompts=2)
    report = run_job("grpo", config)
    assert report["kind"] == "grpo" and report["test"]["prompts"] == 2 and report["train"]["steps"] == 2


@pytest.mark.parametrize(("kind", "fmt", "extra", "message"), [
    ("sft", "pairs", [], "sft training needs an export of format 'sft'"),
    ("kto", "pairs", [], "kto training needs an export of format 'unpaired'"),
    ("rloo", "prompts", [], "reward_model '': no saved reward model there"),
    ("rloo", "prompts", ["--reward_model", "{rm}", "--per_device_batch_size", "6"], "must be a multiple of num_generations"),
    ("grpo", "prompts", ["--reward_model", "{rm}", "--num_generations", "1"], "num_generations: must be >= 2"),
])
def test_bad_inputs_exit_2_naming_the_problem(kind, fmt, extra, message, tmp_path, capsys, tiny_model_path):
    export = synthetic_export_of(tmp_path / "e", fmt, train_prompts=2, test_prompts=1)
    argv = [kind, "--data", str(export), "--output_dir", str(tmp_path / "o"),
            *[a.replace("{rm}", str(tiny_model_path)) for a in extra]]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
