"""The sft format: TRL's conversational language-modelling rows, one per ranking task (its consensus-best response)."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from annotation.services.export import export_options_from_input, export_write, split_of
from tests.factories import engineer_project, make_run, make_task, make_user, many_tasks, rank

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]


def rows_of(out) -> list[dict]:
    return [json.loads(line) for name in ("train", "test") for line in (out / f"{name}.jsonl").read_text().splitlines()]


@pytest.fixture
def ranked():
    project, engineer, _ = engineer_project("sft")
    u1, u2, u3 = make_user("s1"), make_user("s2"), make_user("s3")
    run = make_run(project, system_prompt="Be brief.")
    t1, (a, b, c) = make_task(project, "What is 2+2?", ["4", "Four, I think.", "Fish."], run=run)
    rank(t1, u1, [[a], [b], [c]])
    rank(t1, u2, [[a], [c], [b]])
    rank(t1, u3, [[b], [a], [c]])  # Borda: A 5, B 3, C 1
    t2, (d, e) = make_task(project, "Name a colour.", ["Red.", "Blue."])
    rank(t2, u1, [[d], [e]])
    rank(t2, u2, [[e], [d]])  # D and E tie for best
    t3, (f, g) = make_task(project, "Say hi.", ["Hi!", "Go away."])
    rank(t3, u1, [[f], [g]])
    t4, (h, i) = make_task(project, "Tell a joke.", ["A rude joke.", "A kind joke."])
    rank(t4, u1, [[h], [i]])
    rank(t4, u2, [[h], [i]], flags={h: ["harmful"]})
    make_task(project, "Nobody ranked me.", ["x", "y"])
    return {"project": project, "tasks": (t1, t2, t3, t4), "ids": dict(a=a, b=b, c=c, d=d, e=e, f=f, g=g, h=h, i=i)}


def test_each_task_gives_its_consensus_best_response_as_the_assistant_turn(ranked, tmp_path):
    t1, t2, t3, t4 = ranked["tasks"]
    ids = ranked["ids"]
    manifest = export_write(project=ranked["project"], out_dir=tmp_path / "sft",
                            options=export_options_from_input({"format": "sft", "test_fraction": 0.0}))
    rows = {r["task_id"]: r for r in rows_of(tmp_path / "sft")}
    assert set(rows) == {t1.id, t3.id, t4.id}  # t2: a tie for best; the fifth task: no rankings
    assert rows[t1.id] == {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"},
                     {"role": "assistant", "content": "4"}],
        "prompt_id": t1.prompt_id, "response_id": ids["a"], "task_id": t1.id, "origin": "best_of_n", "votes": 3,
        "agreement": pytest.approx(5 / 9, abs=1e-6), "demonstration_id": None, "source": "human",
    }
    assert rows[t3.id]["response_id"] == ids["f"] and rows[t3.id]["votes"] == 1 and rows[t3.id]["agreement"] is None
    assert rows[t4.id]["messages"][-1] == {"role": "assistant", "content": "A rude joke."}
    assert manifest["columns"] == [
        "messages", "prompt_id", "response_id", "task_id", "origin", "votes", "agreement", "demonstration_id", "source"
    ]
    assert manifest["counts"]["tasks_tied_for_best"] == 1 and manifest["counts"]["tasks_without_rankings"] == 1
    assert manifest["policy"]["ties_for_best"] == "dropped (counted in tasks_tied_for_best)"
    assert manifest["splits"]["train"]["rows"] == 3 and manifest["warnings"] == []


def test_filters_apply_before_the_best_is_chosen(ranked, tmp_path):
    t1, _, _, t4 = ranked["tasks"]
    ids = ranked["ids"]
    flagged = export_write(project=ranked["project"], out_dir=tmp_path / "f",
                           options=export_options_from_input({"format": "sft", "exclude_flagged": True}))
    best = {r["task_id"]: r["response_id"] for r in rows_of(tmp_path / "f")}
    assert best[t4.id] == ids["i"]  # the flagged joke is out: the other one is best
    assert flagged["counts"]["responses_excluded_flagged"] == 1
    export_write(project=ranked["project"], out_dir=tmp_path / "u3",
                 options=export_options_from_input({"format": "sft", "annotators": ["s3"]}))
    assert {r["task_id"]: r["response_id"] for r in rows_of(tmp_path / "u3")} == {t1.id: ids["b"]}
    export_write(project=ranked["project"], out_dir=tmp_path / "agree",
                 options=export_options_from_input({"format": "sft", "min_agreement": 0.6}))
    assert {r["task_id"] for r in rows_of(tmp_path / "agree")} == {t4.id}  # t1 5/9; t3 a single ranking


def test_the_command_and_parquet_write_the_same_rows_with_a_prompt_disjoint_split(tmp_path):
    import pyarrow.parquet as pq

    project, _, _ = engineer_project("sft-split")
    many_tasks(project, [make_user("p1"), make_user("p2"), make_user("p3")], 30)
    call_command("export_preferences", "sft-split", "--format", "sft", "--test-fraction", "0.3", "--seed", "2",
                 "--out", str(tmp_path / "j"), "--no-progress", stdout=StringIO(), stderr=StringIO())
    call_command("export_preferences", "sft-split", "--format", "sft", "--test-fraction", "0.3", "--seed", "2",
                 "--file-format", "parquet", "--out", str(tmp_path / "p"), "--no-progress", stdout=StringIO())
    jsonl = {split: [json.loads(x) for x in (tmp_path / "j" / f"{split}.jsonl").read_text().splitlines()] for split in ("train", "test")}
    parquet = {split: pq.read_table(tmp_path / "p" / f"{split}.parquet").to_pylist() for split in ("train", "test")}
    assert jsonl == parquet
    train, test = ({r["prompt_id"] for r in jsonl[s]} for s in ("train", "test"))
    assert train and test and not train & test and len(train | test) == 30
    assert all(split_of(prompt_id=p, seed=2, test_fraction=0.3) == "test" for p in test)
    manifest = json.loads((tmp_path / "j" / "manifest.json").read_text())
    assert manifest["format"] == "sft" and manifest["splits"]["test"]["prompts"] == len(test)


@pytest.mark.slow
def test_the_export_loads_with_datasets_and_trains_trl_sft_trainer(tmp_path, tiny_model_path):
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    project, _, _ = engineer_project("sft-trl")
    many_tasks(project, [make_user("q1"), make_user("q2"), make_user("q3")], 12, run=make_run(project, system_prompt="Answer."))
    prompt_ids = list(project.prompts.values_list("id", flat=True))
    seed = next(s for s in range(1000) if len({split_of(prompt_id=p, seed=s, test_fraction=0.25) for p in prompt_ids}) == 2)
    out = tmp_path / "sft"
    export_write(project=project, out_dir=out, options=export_options_from_input({"format": "sft", "test_fraction": 0.25, "seed": seed}))
    data = load_dataset("json", data_files={"train": str(out / "train.jsonl"), "test": str(out / "test.jsonl")})
    row = data["train"][0]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["messages"][-1]["content"].startswith("It is ")  # the consensus-best of many_tasks' three answers

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = SFTConfig(output_dir=str(tmp_path / "trained"), max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3,
                     max_length=128, report_to=[], use_cpu=True, save_strategy="no", logging_steps=1, bf16=False,
                     dataloader_num_workers=0, seed=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["test"], processing_class=tokenizer)
    assert trainer.train().global_step == 2
    assert any(not torch.equal(before[name], p.detach()) for name, p in model.named_parameters())
    assert "eval_loss" in trainer.evaluate()
