"""The training package on its own (no Django): python -m training on synthetic exports in the export layout."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.__main__ import main
from training.config import DPOJobConfig, RewardJobConfig
from training.data import ExportDataError, load_export
from training.evaluation import longer_wins_accuracy, wilson_interval
from training.jobs import run_dpo, run_reward
from training.synthetic import synthetic_export, synthetic_pairs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def marker_export(tmp_path_factory):
    """48 train prompts and 16 held-out prompts; the chosen response always contains 'sure'."""
    return synthetic_export(tmp_path_factory.mktemp("export"), train_prompts=48, test_prompts=16)


@pytest.fixture(scope="module")
def trained_reward_model(marker_export, tiny_model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("rm")
    config = RewardJobConfig(data=str(marker_export), output_dir=str(out), base_model=str(tiny_model_path),
                             max_steps=40, learning_rate=3e-3, per_device_batch_size=8, eval_steps=20, logging_steps=10)
    return out, run_reward(config)


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(10, 10)[1] == 1.0


def test_longer_wins_baseline_counts_ties_apart_on_whole_counts():
    rows = [
        {"chosen": [{"role": "assistant", "content": "long answer"}], "rejected": [{"role": "assistant", "content": "x"}]},
        {"chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]},
    ]
    baseline = longer_wins_accuracy(rows)
    assert (baseline["value"], baseline["successes"], baseline["n"], baseline["ties"]) == (0.5, 1, 2, 1)


def test_synthetic_export_is_prompt_disjoint_and_matches_its_manifest(marker_export):
    data = load_export(marker_export)
    train_prompts = {json.dumps(r["prompt"]) for r in data.train}
    test_prompts = {json.dumps(r["prompt"]) for r in data.test}
    assert not train_prompts & test_prompts
    assert data.manifest["splits"]["train"]["rows"] == len(data.train) == 96
    assert all("sure" in r["chosen"][0]["content"].split() for r in data.test)


@pytest.mark.slow
def test_reward_model_learns_the_marker_rule_on_held_out_prompts(trained_reward_model, tiny_model_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    out, report = trained_reward_model
    assert report["test"]["accuracy"]["value"] > 0.9
    low, high = report["test"]["accuracy"]["ci95"]
    assert low <= report["test"]["accuracy"]["value"] <= high
    assert report["test"]["baseline_longer_wins"]["n"] == 32
    assert report["precision"] == "fp32" and report["effective"]["activation_checkpointing"] is False
    assert report["effective"]["bf16"] is False
    assert json.loads((out / "report.json").read_text())["test"]["accuracy"] == report["test"]["accuracy"]
    records = _metrics(out)
    assert any(r["split"] == "train" and "loss" in r["values"] for r in records)
    test_records = [r for r in records if r["split"] == "test" and "accuracy" in r["values"]]
    assert [r["step"] for r in test_records] == [20, 40]
    assert all("margin" in r["values"] for r in test_records)
    # The saved model loads back and differs from the base in the backbone, not only in the new head.
    trained = AutoModelForSequenceClassification.from_pretrained(out / "model")
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_path, num_labels=1)
    name = "model.layers.0.mlp.down_proj.weight"
    assert not torch.equal(trained.state_dict()[name], base.state_dict()[name])


@pytest.mark.slow
def test_dpo_raises_implicit_reward_accuracy_and_reports_win_rate(marker_export, trained_reward_model,
                                                                  tiny_model_path, tmp_path):
    rm_dir, _ = trained_reward_model
    config = DPOJobConfig(data=str(marker_export), output_dir=str(tmp_path), base_model=str(tiny_model_path),
                          max_steps=30, learning_rate=2e-3, beta=0.1, eval_steps=15, logging_steps=10,
                          judge_reward_model=str(rm_dir / "model"), win_rate_prompts=8, max_new_tokens=8)
    report = run_dpo(config)
    before = report["test"]["before"]
    assert (before["wins"], before["ties"], before["losses"]) == (0, 32, 0)  # policy == reference: all tie
    assert report["test"]["implicit_reward_accuracy"]["value"] > 0.5
    assert report["test"]["after"]["mean_margin"] > 0
    win = report["test"]["win_rate_vs_base"]
    assert win["prompts"] == 8 and 0.0 <= win["win_rate"]["value"] <= 1.0
    records = _metrics(tmp_path)
    assert any(r["split"] == "test" and "rewards/accuracies" in r["values"] for r in records)
    assert (tmp_path / "model" / "model.safetensors").exists() and (tmp_path / "report.json").exists()


@pytest.mark.slow
def test_cli_trains_dpo_with_lora_on_a_parquet_export(tiny_model_path, tmp_path):
    export = synthetic_export(tmp_path / "export", train_prompts=8, test_prompts=4, file_format="parquet")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "training", "dpo", "--data", str(export), "--output_dir", str(out),
         "--base_model", str(tiny_model_path), "--max_steps", "3", "--use_lora", "true", "--lora_r", "4",
         "--loss_type", "ipo", "--beta", "0.5", "--eval_steps", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["loss_type"] == "ipo" and report["train"]["steps"] == 3
    assert (out / "adapter" / "adapter_config.json").exists()
    assert (out / "model" / "config.json").exists()  # merged weights: usable as a generation model
    assert not (out / "checkpoints").exists()


def _run_main(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


def test_cli_refuses_a_directory_without_manifest(tmp_path, capsys):
    code, err = _run_main(["reward", "--data", str(tmp_path), "--output_dir", str(tmp_path / "o")], capsys)
    assert code == 2 and "manifest.json: missing" in err


def test_cli_refuses_an_unpaired_export(tmp_path, capsys):
    export = synthetic_export(tmp_path / "e", train_prompts=2, test_prompts=1)
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["format"] = "unpaired"
    (export / "manifest.json").write_text(json.dumps(manifest))
    code, err = _run_main(["dpo", "--data", str(export), "--output_dir", str(tmp_path / "o")], capsys)
    assert code == 2 and "format 'unpaired'" in err


def test_cli_refuses_a_split_whose_sha256_differs_from_the_manifest(tmp_path, capsys):
    export = synthetic_export(tmp_path / "e", train_prompts=2, test_prompts=1)
    with open(export / "train.jsonl", "a") as handle:
        handle.write(json.dumps(synthetic_pairs(prompts=1)[0]) + "\n")
    code, err = _run_main(["reward", "--data", str(export), "--output_dir", str(tmp_path / "o")], capsys)
    assert code == 2 and "train.jsonl: sha256 differs" in err


def test_cli_refuses_rows_without_chat_messages(tmp_path):
    from training.data import write_export

    rows = [{"prompt": "plain text", "chosen": "a", "rejected": "b"}]
    export = write_export(tmp_path / "e", train=rows, test=[])
    with pytest.raises(ExportDataError, match=r"row 1: 'prompt' must be a list of \{role, content\} messages"):
        load_export(export)


def test_cli_refuses_an_unknown_loss_type_and_a_missing_base_model(tmp_path, capsys):
    export = synthetic_export(tmp_path / "e", train_prompts=2, test_prompts=1)
    code, err = _run_main(["dpo", "--data", str(export), "--output_dir", str(tmp_path / "o"),
                           "--loss_type", "sigmoid,nonsense"], capsys)
    assert code == 2 and "loss_type: unknown ['nonsense']" in err
    code, err = _run_main(["reward", "--data", str(export), "--output_dir", str(tmp_path / "o"),
                           "--base_model", str(tmp_path / "no-such-model")], capsys)
    assert code == 2 and "no-such-model" in err and "no config.json" in err


def test_cli_rejects_an_unknown_option_with_exit_status_2(tmp_path):
    assert main(["reward", "--data", str(tmp_path), "--output_dir", str(tmp_path), "--no_such_option", "1"]) == 2
    with pytest.raises(SystemExit) as exc:  # argparse: a value of the wrong type
        main(["reward", "--data", str(tmp_path), "--output_dir", str(tmp_path), "--max_steps", "many"])
    assert exc.value.code == 2
    assert main(["ppo"]) == 2


def test_training_package_imports_without_django():
    code = "import sys, training.__main__, training.jobs, training.evaluation; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120).returncode == 0


@pytest.mark.slow
def test_gpu_benchmark_code_path_runs_on_cpu_with_a_tiny_model(tmp_path):
    """bench/training_gpu.py is only measured on a GPU host; its code path is kept working here."""
    out = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "bench/training_gpu.py", "--tiny", "--steps", "1", "--pairs", "8", "--words", "5",
         "--max-length", "64", "--batch-size", "4", "--rl-new-tokens", "4", "--rl-eval-prompts", "2", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert [r["job"] for r in figures["results"]] == ["sft", "reward", "dpo", "rloo"]
    assert all(r["steps"] == 1 and r["train_samples_per_second"] > 0 for r in figures["results"])
