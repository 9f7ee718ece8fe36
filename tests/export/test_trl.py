"""The exports are read by the real clients as they are: datasets.load_dataset and TRL's trainers.

DPOTrainer and RewardTrainer train a few steps on a pairs export, KTOTrainer on an unpaired one,
with the project's tiny model on CPU; each test checks that the weights changed.
"""
from __future__ import annotations

import pytest
import torch

from annotation.services.export import export_options_from_input, export_write, split_of
from tests.factories import engineer_project, make_run, make_user, many_tasks

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres, pytest.mark.slow]

COMMON = {"max_steps": 2, "per_device_train_batch_size": 4, "bf16": False, "gradient_checkpointing": False,
          "report_to": [], "use_cpu": True, "save_strategy": "no", "logging_steps": 1, "learning_rate": 1e-3,
          "max_length": 128, "dataloader_num_workers": 0, "seed": 0}


@pytest.fixture
def export_dir(tmp_path):
    project, _, _ = engineer_project("trl")
    many_tasks(project, [make_user("t1"), make_user("t2"), make_user("t3")], 12, run=make_run(project, system_prompt="Answer."))

    # Row ids differ between runs of the suite: pick the first seed that puts prompts in both splits.
    prompt_ids = list(project.prompts.values_list("id", flat=True))
    seed = next(s for s in range(1000) if len({split_of(prompt_id=p, seed=s, test_fraction=0.25) for p in prompt_ids}) == 2)

    def write(fmt: str):
        out = tmp_path / fmt
        export_write(project=project, options=export_options_from_input({"format": fmt, "test_fraction": 0.25, "seed": seed}),
                     out_dir=out, created_by="trl-test")
        return out

    return write


def load(out):
    from datasets import load_dataset

    return load_dataset("json", data_files={"train": str(out / "train.jsonl"), "test": str(out / "test.jsonl")})


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def changed(model, before) -> bool:
    return any(not torch.equal(before[name], p.detach()) for name, p in model.named_parameters() if name in before)


def test_pairs_export_loads_with_datasets_in_trl_conversational_preference_form(export_dir):
    data = load(export_dir("pairs"))
    assert data["train"].num_rows > 0 and data["test"].num_rows > 0
    row = data["train"][0]
    assert row["prompt"][0] == {"role": "system", "content": "Answer."} and row["prompt"][-1]["role"] == "user"
    assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
    from trl.data_utils import is_conversational

    assert is_conversational(row)
    assert not set(data["train"]["prompt_id"]) & set(data["test"]["prompt_id"])


def test_dpo_trainer_trains_on_the_pairs_export(export_dir, tiny_model_path, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    data = load(export_dir("pairs"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    before = snapshot(model)
    trainer = DPOTrainer(model=model, args=DPOConfig(output_dir=str(tmp_path / "dpo"), **COMMON),
                         train_dataset=data["train"], eval_dataset=data["test"], processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 2
    assert changed(model, before)
    assert "eval_loss" in trainer.evaluate()


def test_reward_trainer_trains_on_the_pairs_export(export_dir, tiny_model_path, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    data = load(export_dir("pairs"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_path, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    before = snapshot(model)
    trainer = RewardTrainer(model=model, args=RewardConfig(output_dir=str(tmp_path / "rm"), **COMMON),
                            train_dataset=data["train"], eval_dataset=data["test"], processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 2
    assert changed(model, before)


def test_kto_trainer_trains_on_the_unpaired_export(export_dir, tiny_model_path, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import KTOConfig, KTOTrainer

    data = load(export_dir("unpaired"))
    assert set(data["train"]["label"]) == {True, False}
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    before = snapshot(model)
    trainer = KTOTrainer(model=model, args=KTOConfig(output_dir=str(tmp_path / "kto"), **COMMON),
                         train_dataset=data["train"], processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 2
    assert changed(model, before)
