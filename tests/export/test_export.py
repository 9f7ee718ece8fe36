"""Exports: row contents, policies, filters, split, manifest, Parquet = JSONL, command, API, worker."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.errors import ApplicationError
from annotation.models import ExportSnapshot, JobStatus, Role
from annotation.services.consensus import task_agreement
from annotation.services.export import (
    export_options_from_input,
    export_snapshot_create,
    export_snapshot_run,
    export_write,
    manifest_verify,
    split_of,
)
from tests.factories import engineer_project, make_project, make_run, make_task, make_user, many_tasks, rank

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def export(project, tmp_path, name="out", **options) -> tuple[dict, Path]:
    out = tmp_path / name
    options = {"format": "pairs", **options}
    manifest = export_write(project=project, options=export_options_from_input(options), out_dir=out, created_by="tester")
    return manifest, out


def all_rows(out: Path, ext: str = "jsonl") -> list[dict]:
    if ext == "parquet":
        return pq.read_table(out / "train.parquet").to_pylist() + pq.read_table(out / "test.parquet").to_pylist()
    return read_jsonl(out / "train.jsonl") + read_jsonl(out / "test.jsonl")


@pytest.fixture
def hand_built():
    """Task 1: A > B > C by two of three annotators (u3: B > A > C, and flags C); task 2 ties D = E > F; a gold task."""
    project, engineer, _ = engineer_project("hand")
    u1, u2, u3 = make_user("u1"), make_user("u2"), make_user("u3")
    run = make_run(project, system_prompt="Be brief.")
    t1, (a, b, c) = make_task(project, "What is 2+2?", ["4", "Four, I think.", "Fish."], run=run)
    rank(t1, u1, [[a], [b], [c]], rationale="A is exact", duration=10.0)
    rank(t1, u2, [[a], [c], [b]], duration=20.0)
    rank(t1, u3, [[b], [a], [c]], flags={c: ["harmful"]}, at=timezone.now() - dt.timedelta(days=10))
    t2, (d, e, f) = make_task(project, "Name a colour.", ["Red.", "Blue.", "Seven."])
    rank(t2, u1, [[d], [e], [f]])
    rank(t2, u2, [[e], [d], [f]])
    gold, (g1, g2, _g3) = make_task(project, "Gold question?", ["Right.", "Wrong.", "Silent."], is_gold=True)
    rank(gold, u1, [[g1], [g2], [_g3]])
    return {"project": project, "engineer": engineer, "users": (u1, u2, u3), "run": run, "t1": t1, "t2": t2,
            "gold": gold, "ids": {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "g1": g1, "g2": g2}}


def by_pair(rows):
    return {(r["chosen_id"], r["rejected_id"]): r for r in rows}


def test_task_agreement_is_mean_pairwise_agreement_over_response_pairs():
    # AB: 2 of 3 annotators agree -> 1 agreeing pair of 3; AC: 3 of 3; BC: 1 of 3 -> 5/9.
    assert task_agreement([[[1], [2], [3]], [[1], [3], [2]], [[2], [1], [3]]]) == pytest.approx(5 / 9, abs=1e-6)
    assert task_agreement([[[1], [2]], [[1], [2]]]) == 1.0
    assert task_agreement([[[1], [2]]]) is None


def test_fused_task_summary_matches_the_consensus_module_on_random_rankings():
    import random

    from annotation.services.consensus import pair_votes, task_consensus
    from annotation.services.export.pairs import task_summary

    rng = random.Random(5)
    for _ in range(500):
        items = rng.sample(range(1, 40), rng.randint(2, 6))
        rankings = []
        for _ in range(rng.randint(1, 5)):
            shown = rng.sample(items, rng.randint(2, len(items)))  # partial rankings too
            tiers: list[list[int]] = []
            for item in shown:
                if tiers and rng.random() < 0.3:
                    tiers[-1].append(item)  # ties
                else:
                    tiers.append([item])
            rankings.append(tiers)
        consensus, votes = task_summary(rankings)
        assert consensus == task_consensus(rankings).tiers
        expected = {}
        for (a, b), pair in pair_votes(rankings).items():
            counts = [pair.a_over_b, pair.b_over_a, pair.ties]
            expected[(a, b) if a < b else (b, a)] = counts if a < b else [counts[1], counts[0], counts[2]]
        assert votes == expected


@pytest.mark.parametrize("policy", ["all", "best_vs_rest", "adjacent"])
def test_pairs_from_cached_task_shapes_equal_pairs_computed_from_the_consensus_module(policy):
    """The exporter reuses one plan per task shape; its rows must be what the consensus module gives each task."""
    import random

    from annotation.services.consensus import pair_votes, task_consensus
    from annotation.services.export.pairs import consensus_pairs
    from annotation.services.export.reader import TaskData
    from annotation.services.export.rows import ExportStats, RowBuilder

    rng = random.Random(11)
    builder = RowBuilder(export_options_from_input({"format": "pairs", "file_format": "parquet", "policy": policy}))
    for task_id in range(400):
        k = rng.choice([2, 3, 4, 4, 4, 12])  # 12: more labels than the cache takes
        ids = rng.sample([5, 9, 10, 11, 99, 100, 101, 1000, 7, 8, 12, 13, 2000, 3], k)  # string order != number order
        rankings = []
        for _ in range(rng.randint(1, 4)):
            tiers: list[list[int]] = []
            for item in rng.sample(ids, rng.randint(2, k)):
                if tiers and rng.random() < 0.25:
                    tiers[-1].append(item)
                else:
                    tiers.append([item])
            rankings.append(tiers)
        task = TaskData(task_id, task_id, False, [{"role": "user", "content": "q"}], {i: (f"r{i}", None) for i in ids},
                         [(None, t, None) for t in rankings])
        got = [(r[5], r[6], r[7], r[8], r[3]) for r in builder.rows(task, ExportStats())]
        votes = pair_votes(rankings)
        expected = []
        for better, worse in consensus_pairs(task_consensus(rankings).tiers, policy):
            pair = votes.get((better, worse) if str(better) < str(worse) else (worse, better))
            if pair is None:
                continue
            chosen, rejected = (pair.a_over_b, pair.b_over_a) if pair.a == better else (pair.b_over_a, pair.a_over_b)
            if chosen > rejected:
                expected.append((better, worse, chosen, rejected, round(chosen / pair.total, 6)))
        assert sorted(got) == sorted(expected)
    assert 0 < len(builder.plans) < 400  # shapes were shared


def test_pairs_rows_of_a_hand_built_case(hand_built, tmp_path):
    ids = hand_built["ids"]
    manifest, out = export(hand_built["project"], tmp_path, test_fraction=0.0, exclude_gold=True)
    rows = all_rows(out)
    pairs = by_pair(rows)
    a, b, c, d, e, f = (ids[k] for k in "abcdef")
    assert set(pairs) == {(a, b), (a, c), (b, c), (d, f), (e, f)}  # D = E tied in the consensus: no pair
    row = pairs[(a, b)]
    assert row["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "4"}]
    assert row["rejected"] == [{"role": "assistant", "content": "Four, I think."}]
    assert (row["votes_chosen"], row["votes_rejected"]) == (2, 1)
    assert row["margin"] == pytest.approx(2 / 3, abs=1e-6)
    assert row["agreement"] == pytest.approx(5 / 9, abs=1e-6)
    assert row["prompt_id"] == hand_built["t1"].prompt_id
    assert pairs[(a, c)]["margin"] == 1.0 and pairs[(a, c)]["votes_chosen"] == 3
    assert pairs[(d, f)]["prompt"] == [{"role": "user", "content": "Name a colour."}]  # imported: no system prompt
    assert pairs[(d, f)]["agreement"] == pytest.approx(2 / 3, abs=1e-6)
    assert list(rows[0]) == manifest["columns"]
    assert manifest["counts"]["pairs_tied_dropped"] == 1
    assert manifest["splits"]["train"]["rows"] == 5 and manifest["splits"]["test"]["rows"] == 0


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("all", {"ab", "ac", "bc"}), ("best_vs_rest", {"ab", "ac"}), ("adjacent", {"ab", "bc"})],
)
def test_pair_policy_decides_which_consensus_pairs_are_emitted(hand_built, tmp_path, policy, expected):
    ids = hand_built["ids"]
    _, out = export(hand_built["project"], tmp_path, policy=policy, exclude_gold=True)
    task1 = {(r["chosen_id"], r["rejected_id"]) for r in all_rows(out) if r["prompt_id"] == hand_built["t1"].prompt_id}
    assert task1 == {(ids[p[0]], ids[p[1]]) for p in expected}


def test_filters_gold_flagged_annotators_time_window_min_votes_min_agreement(hand_built, tmp_path):
    ids, project = hand_built["ids"], hand_built["project"]
    a, b, c = ids["a"], ids["b"], ids["c"]
    t1_prompt = hand_built["t1"].prompt_id

    def pairs_of_t1(**options):
        _, out = export(project, tmp_path, name=json.dumps(options, sort_keys=True).replace("/", "_"), **options)
        return {(r["chosen_id"], r["rejected_id"]): r for r in all_rows(out) if r["prompt_id"] == t1_prompt}, out

    with_gold, _ = pairs_of_t1()
    _, out = pairs_of_t1()
    assert any(r["chosen_id"] == ids["g1"] for r in all_rows(out))
    _, out = pairs_of_t1(exclude_gold=True)
    assert not any(r["chosen_id"] == ids["g1"] for r in all_rows(out))

    flagged, _ = pairs_of_t1(exclude_flagged=True)  # u3 flagged C: C leaves every pair
    assert set(flagged) == {(a, b)}

    only_two, _ = pairs_of_t1(annotators=["u1", "u2"])  # A > B = C: the tie makes no pair
    assert set(only_two) == {(a, b), (a, c)}
    assert only_two[(a, b)]["votes_chosen"] == 2 and only_two[(a, b)]["votes_rejected"] == 0

    recent, _ = pairs_of_t1(since=(timezone.now() - dt.timedelta(days=1)).isoformat())  # u3's ranking is older
    assert set(recent) == set(only_two)
    old, _ = pairs_of_t1(until=(timezone.now() - dt.timedelta(days=1)).isoformat())
    assert set(old) == {(b, a), (b, c), (a, c)}  # u3 alone: B > A > C

    assert pairs_of_t1(min_votes=3)[0] and not pairs_of_t1(min_votes=4)[0]
    manifest, out = export(project, tmp_path, name="agree", min_agreement=0.6)
    kept = {r["prompt_id"] for r in all_rows(out)}
    assert t1_prompt not in kept and hand_built["t2"].prompt_id in kept  # 5/9 < 0.6 <= 2/3
    assert manifest["counts"]["tasks_below_min_agreement"] == 2  # task 1, and the gold task (one ranking: no agreement)
    assert manifest["filters"]["min_agreement"] == 0.6


def test_unpaired_labels_top_tier_true_and_bottom_tier_false(hand_built, tmp_path):
    ids = hand_built["ids"]
    manifest, out = export(hand_built["project"], tmp_path, format="unpaired", exclude_gold=True)
    labels = {r["completion_id"]: r["label"] for r in all_rows(out)}
    assert labels == {ids["a"]: True, ids["c"]: False, ids["d"]: True, ids["e"]: True, ids["f"]: False}
    row = next(r for r in all_rows(out) if r["completion_id"] == ids["a"])
    assert row["completion"] == [{"role": "assistant", "content": "4"}]
    assert row["prompt"][-1] == {"role": "user", "content": "What is 2+2?"}
    assert manifest["policy"]["desirable_tiers"] == 1


def test_rankings_keep_every_annotation_with_irreversible_stable_pseudonyms_and_provenance(hand_built, tmp_path):
    u1, u2, u3 = hand_built["users"]
    ids = hand_built["ids"]
    _, out = export(hand_built["project"], tmp_path, format="rankings")
    rows = {r["task_id"]: r for r in all_rows(out)}
    assert set(rows) == {hand_built["t1"].id, hand_built["t2"].id, hand_built["gold"].id}
    t1 = rows[hand_built["t1"].id]
    assert [ann["tiers"] for ann in t1["annotations"]] == [[[ids["b"]], [ids["a"]], [ids["c"]]],
                                                           [[ids["a"]], [ids["b"]], [ids["c"]]],
                                                           [[ids["a"]], [ids["c"]], [ids["b"]]]]  # by submission time
    first = t1["annotations"][1]
    assert first["rationale"] == "A is exact" and first["duration_seconds"] == 10.0
    assert first["display_order"] == [ids["c"], ids["b"], ids["a"]]
    assert t1["annotations"][0]["flags"] == [{"response_id": ids["c"], "flags": ["harmful"]}]
    assert t1["consensus"] == [[ids["a"]], [ids["b"]], [ids["c"]]]
    assert t1["agreement"] == pytest.approx(5 / 9, abs=1e-6)
    response = next(r for r in t1["responses"] if r["id"] == ids["a"])
    assert response["content"] == "4" and response["model"] == "tiny-llama"
    generation = response["generation"]
    assert (generation["temperature"], generation["top_p"], generation["seed"], generation["sample_index"]) == (0.7, 0.9, 42, 0)
    assert generation["run_id"] == hand_built["run"].id
    assert rows[hand_built["t2"].id]["responses"][0]["generation"] is None  # imported responses: no run

    # Stable inside one export: u1 has one pseudonym across tasks; nothing of the user id or name shows.
    pseudonyms = {}
    for row in rows.values():
        for ann in row["annotations"]:
            pseudonyms.setdefault(ann["tiers"][0][0] in (ids["a"], ids["d"], ids["g1"]), set()).add(ann["annotator"])
    u1_name = rows[hand_built["gold"].id]["annotations"][0]["annotator"]
    assert t1["annotations"][1]["annotator"] == u1_name == rows[hand_built["t2"].id]["annotations"][0]["annotator"]
    assert len({ann["annotator"] for ann in t1["annotations"]}) == 3
    text = (out / "train.jsonl").read_text() + (out / "test.jsonl").read_text()
    for user in (u1, u2, u3):
        assert user.username not in text
        assert hashlib.sha256(str(user.id).encode()).hexdigest()[:16] not in u1_name
    # A second export uses a fresh random salt: the same annotator gets another pseudonym.
    _, again = export(hand_built["project"], tmp_path, name="again", format="rankings")
    other = {r["task_id"]: r for r in all_rows(again)}[hand_built["gold"].id]["annotations"][0]["annotator"]
    assert other != u1_name


def test_split_is_prompt_disjoint_deterministic_and_keeps_a_prompt_with_several_tasks_together(tmp_path):
    project, _, _ = engineer_project("split")
    annotators = [make_user(f"s{i}") for i in range(2)]
    many_tasks(project, annotators, 40)
    # A second run's task on an existing prompt: same prompt, so it must land in the same split.
    first = project.tasks.order_by("id").first()
    second, (x, y) = make_task(project, "", ["Another answer.", "Yet another one."], prompt=first.prompt, run=make_run(project))
    rank(second, annotators[0], [[x], [y]])

    manifest, out = export(project, tmp_path, test_fraction=0.3, seed=7)
    train = {r["prompt_id"] for r in read_jsonl(out / "train.jsonl")}
    test = {r["prompt_id"] for r in read_jsonl(out / "test.jsonl")}
    assert train and test and not train & test
    assert len(train | test) == 40
    assert all(split_of(prompt_id=p, seed=7, test_fraction=0.3) == "test" for p in test)
    assert manifest["splits"]["test"]["prompts"] == len(test)
    _, again = export(project, tmp_path, name="again", test_fraction=0.3, seed=7)
    assert {r["prompt_id"] for r in read_jsonl(again / "test.jsonl")} == test
    assert (again / "train.jsonl").read_bytes() == (out / "train.jsonl").read_bytes()
    _, reseeded = export(project, tmp_path, name="reseeded", test_fraction=0.3, seed=8)
    assert {r["prompt_id"] for r in read_jsonl(reseeded / "test.jsonl")} != test


@pytest.mark.parametrize("fmt", ["pairs", "rankings"])
@pytest.mark.parametrize("exclude_flagged", [False, True])
@pytest.mark.parametrize("annotators", [False, True])
def test_the_orm_reading_used_on_sqlite_returns_what_the_postgresql_reading_returns(hand_built, fmt, exclude_flagged, annotators):
    from annotation.models import RankingTask
    from annotation.services.export.sql import fetch_chunk_orm, fetch_chunk_postgres, rankings_chunk_sql
    from annotation.services.ranking_filter import ranking_filter_resolve

    opts = export_options_from_input({"format": fmt, "exclude_flagged": exclude_flagged, "annotators": ["u1", "u3"]})
    ranking_filter = ranking_filter_resolve(project=hand_built["project"], ranking_filter=opts.ranking_filter)
    tasks = list(RankingTask.objects.values_list("id", "prompt_id"))
    task_ids, prompt_ids = [t for t, _ in tasks], sorted({p for _, p in tasks})
    sql, params = rankings_chunk_sql(opts, ranking_filter, annotators=annotators)
    fast = fetch_chunk_postgres(sql, params, task_ids, prompt_ids, full=fmt == "rankings")
    orm = fetch_chunk_orm(opts, ranking_filter, task_ids, prompt_ids, annotators=annotators)
    assert fast[1:] == orm[1:]  # responses and prompts
    names = {r.annotator_id for r in hand_built["project"].rankings.all()}
    for task_id, rows in orm[0].items():
        width = 8 if fmt == "rankings" else 3
        assert [row[:width] for row in fast[0][task_id]] == [row[:width] for row in rows]
        if fmt == "pairs":  # who ranked only when asked (a weighted consensus); flags only when they exclude
            assert all((row[0] in names) if annotators else row[0] is None for row in rows)
            assert all(row[2] is None for row in rows) or exclude_flagged


@pytest.mark.parametrize("fmt", ["pairs", "unpaired", "rankings"])
def test_manifest_hashes_and_sizes_match_the_files(hand_built, tmp_path, fmt):
    manifest, out = export(hand_built["project"], tmp_path, format=fmt, test_fraction=0.5, seed=3)
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    assert on_disk["schema_version"] == 1 and on_disk["format"] == fmt and on_disk["project"] == "hand"
    assert on_disk["created_by"] == "tester" and on_disk["seed"] == 3 and on_disk["test_fraction"] == 0.5
    for split in ("train", "test"):
        info = on_disk["splits"][split]
        data = (out / info["file"]).read_bytes()
        assert info["sha256"] == hashlib.sha256(data).hexdigest() and info["bytes"] == len(data)
        assert info["rows"] == len(data.splitlines())
    assert manifest_verify(directory=out) == []
    (out / "test.jsonl").write_bytes((out / "test.jsonl").read_bytes() + b"\n")
    assert manifest_verify(directory=out)  # a changed file is caught
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "test.jsonl", "train.jsonl"]  # no partials


@pytest.mark.parametrize("fmt", ["pairs", "unpaired", "rankings"])
def test_parquet_has_the_same_columns_and_rows_as_jsonl(hand_built, tmp_path, fmt):
    # Row ids differ between runs of the suite: a seed that puts prompts in both splits (train must not be empty).
    prompts = [hand_built[name].prompt_id for name in ("t1", "t2", "gold")]
    seed = next(s for s in range(1000) if len({split_of(prompt_id=p, seed=s, test_fraction=0.5) for p in prompts}) == 2)
    _, jsonl = export(hand_built["project"], tmp_path, name="j", format=fmt, test_fraction=0.5, seed=seed)
    manifest, parquet = export(hand_built["project"], tmp_path, name="p", format=fmt, file_format="parquet", test_fraction=0.5,
                               seed=seed)
    assert pq.read_schema(parquet / "train.parquet").names == manifest["columns"] == list(read_jsonl(jsonl / "train.jsonl")[0])
    json_rows, parquet_rows = all_rows(jsonl), all_rows(parquet, "parquet")
    if fmt == "rankings":  # pseudonyms differ between two exports by design
        for rows in (json_rows, parquet_rows):
            for row in rows:
                for ann in row["annotations"]:
                    ann.pop("annotator")
    assert parquet_rows == json_rows
    assert manifest["splits"]["train"]["sha256"] == hashlib.sha256((parquet / "train.parquet").read_bytes()).hexdigest()


def test_bad_options_are_refused_with_every_field_named():
    with pytest.raises(ApplicationError) as err:
        export_options_from_input({"format": "triples", "test_fraction": 1.0, "seed": "x", "policy": "best",
                                   "min_agreement": 2, "exclude_gold": "yes", "colour": "red", "since": "yesterday"})
    assert set(err.value.fields) == {"format", "test_fraction", "seed", "policy", "min_agreement", "exclude_gold",
                                     "colour", "since"}
    assert err.value.status == 400


def test_export_of_data_made_through_the_real_import_lease_and_submit_services(tmp_path):
    from annotation.services.assignment import assignment_lease_next
    from annotation.services.importing import prompts_import
    from annotation.services.ranking import ranking_submit

    project, _, _ = engineer_project("real")
    lines = [json.dumps({"prompt": f"Say something about {w}.", "responses": [f"{w} is nice.", f"{w}?", f"No {w} here."]})
             for w in ("cats", "dogs", "tea")]
    prompts_import(project=project, fileobj=io.BytesIO("\n".join(lines).encode()), file_format="jsonl")
    annotators = [make_user(f"r{i}") for i in range(3)]
    from annotation.models import Membership
    for user in annotators:
        Membership.objects.create(user=user, project=project, role=Role.ANNOTATOR)
    for user in annotators:
        for _ in range(3):
            assignment = assignment_lease_next(project=project, annotator=user)
            shown = list(assignment.opaque_ids)
            by_text = {assignment.task.responses.get(id=rid).text: opaque for opaque, rid in assignment.opaque_ids.items()}
            best = next(o for t, o in by_text.items() if t.endswith("is nice."))
            ranking_submit(assignment_id=assignment.id, annotator=user,
                           ranking=[[best]] + [[o] for o in shown if o != best])
    _, out = export(project, tmp_path, test_fraction=0.0, policy="best_vs_rest")
    rows = all_rows(out)
    assert len(rows) == 6
    assert all(r["chosen"][0]["content"].endswith("is nice.") and r["votes_chosen"] == 3 and r["margin"] == 1.0 for r in rows)
    assert all(r["agreement"] is not None for r in rows)


# ---- command ------------------------------------------------------------------------------


def test_command_writes_the_layout_and_prints_the_manifest_summary(hand_built, tmp_path, capsys):
    out = tmp_path / "cmd"
    call_command("export_preferences", "hand", "--format", "pairs", "--out", str(out), "--seed", "5",
                 "--test-fraction", "0.5", "--file-format", "parquet", "--user", "alice", "--no-progress")
    printed = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["created_by"] == "alice" and manifest["file_format"] == "parquet" and manifest["seed"] == 5
    assert manifest["splits"]["train"]["sha256"] in printed and "train: train.parquet" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hand", "--format", "triples"], "format: must be one of pairs, unpaired, rankings"),
        (["hand", "--format", "pairs", "--min-agreement", "high"], "min_agreement: must be a number"),
        (["hand", "--format", "pairs", "--test-fraction", "1.5"], "test_fraction: must be below 1.0"),
        (["hand", "--format", "pairs", "--policy", "random"], "policy: must be one of all, best_vs_rest, adjacent"),
        (["nope", "--format", "pairs"], "No project with slug 'nope'"),
    ],
)
def test_command_bad_input_exits_2_naming_the_problem_and_writes_nothing(hand_built, tmp_path, args, message):
    out = tmp_path / "never"
    with pytest.raises(CommandError) as err:
        call_command("export_preferences", *args, "--out", str(out), "--no-progress")
    assert err.value.returncode == 2
    assert message in str(err.value)
    assert not out.exists()


def test_command_refuses_a_non_empty_output_directory(hand_built, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    with pytest.raises(CommandError) as err:
        call_command("export_preferences", "hand", "--format", "pairs", "--out", str(tmp_path / "used"), "--no-progress")
    assert err.value.returncode == 2 and "not an empty directory" in str(err.value)
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["keep.txt"]


@pytest.mark.slow
def test_command_process_exit_status_is_2_for_bad_input(tmp_path):
    from django.db import connection

    db = connection.settings_dict  # the test database, which has the schema
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.test_settings",
           "DATABASE_URL": f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"}
    result = subprocess.run(
        [sys.executable, "manage.py", "export_preferences", "no-such-project", "--format", "pairs", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2], timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "no-such-project" in result.stderr


# ---- API ----------------------------------------------------------------------------------


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_create_status_and_download_a_single_file_and_a_streamed_zip(hand_built, django_capture_on_commit_callbacks):
    client = client_for(hand_built["engineer"])
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/api/v1/projects/hand/exports/", {"format": "pairs", "test_fraction": 0.5, "seed": 1}, format="json")
    assert created.status_code == 202, created.content
    export_id = created.json()["id"]
    status = client.get(f"/api/v1/exports/{export_id}/").json()
    assert status["status"] == "succeeded" and status["rows_done"] == status["rows_total"] == 3
    assert status["manifest"]["created_by"] == "hand-eng"
    assert set(status["files"]) == {"train.jsonl", "test.jsonl"}

    single = client.get(f"/api/v1/exports/{export_id}/download?file=train.jsonl")
    assert single.status_code == 200
    body = b"".join(single.streaming_content)
    assert hashlib.sha256(body).hexdigest() == status["files"]["train.jsonl"]["sha256"]

    whole = client.get(f"/api/v1/exports/{export_id}/download")
    assert whole.status_code == 200 and whole.streaming and whole["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(whole.streaming_content)))
    names = sorted(n.split("/", 1)[1] for n in archive.namelist())
    assert names == ["manifest.json", "test.jsonl", "train.jsonl"]
    prefix = archive.namelist()[0].split("/")[0]
    assert archive.read(f"{prefix}/train.jsonl") == body

    missing = client.get(f"/api/v1/exports/{export_id}/download?file=../../etc/passwd")
    assert missing.status_code == 404
    listed = client.get("/api/v1/projects/hand/exports/").json()
    assert [row["id"] for row in listed["results"]] == [export_id]


def test_api_bad_options_answer_400_naming_the_fields_and_store_nothing(hand_built):
    client = client_for(hand_built["engineer"])
    response = client.post("/api/v1/projects/hand/exports/", {"format": "pairs", "min_agreement": "lots", "sort": 1}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"min_agreement", "sort"}
    missing = client.post("/api/v1/projects/hand/exports/", {"test_fraction": 0.2}, format="json")
    assert missing.status_code == 400 and "required" in missing.json()["error"]["fields"]["format"][0]
    assert not ExportSnapshot.objects.exists()


def test_api_annotators_get_403_and_other_projects_404(hand_built, django_capture_on_commit_callbacks):
    project = hand_built["project"]
    annotator = make_user("just-annotator")
    from annotation.models import Membership
    Membership.objects.create(user=annotator, project=project, role=Role.ANNOTATOR)
    other_engineer = make_user("other-eng")
    make_project("other", members={other_engineer: Role.ENGINEER})
    with django_capture_on_commit_callbacks(execute=True):
        snapshot = export_snapshot_create(project=project, created_by=hand_built["engineer"], options={"format": "pairs"})

    ann = client_for(annotator)
    assert ann.post("/api/v1/projects/hand/exports/", {"format": "pairs"}, format="json").status_code == 403
    assert ann.get("/api/v1/projects/hand/exports/").status_code == 403
    assert ann.get(f"/api/v1/exports/{snapshot.id}/").status_code == 403
    assert ann.get(f"/api/v1/exports/{snapshot.id}/download").status_code == 403

    other = client_for(other_engineer)  # engineer elsewhere: this project and its export do not exist for them
    assert other.post("/api/v1/projects/hand/exports/", {"format": "pairs"}, format="json").status_code == 404
    assert other.get(f"/api/v1/projects/{project.id}/exports/").status_code == 404
    assert other.get(f"/api/v1/exports/{snapshot.id}/").status_code == 404
    assert other.get(f"/api/v1/exports/{snapshot.id}/download?file=train.jsonl").status_code == 404
    assert APIClient().get(f"/api/v1/exports/{snapshot.id}/").status_code in (401, 403)


def test_download_of_an_unfinished_export_is_a_conflict(hand_built):
    snapshot = export_snapshot_create(project=hand_built["project"], created_by=hand_built["engineer"], options={"format": "pairs"})
    response = client_for(hand_built["engineer"]).get(f"/api/v1/exports/{snapshot.id}/download")
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"


# ---- snapshot runs: idempotent, failures recorded, a real worker ----------------------------


def test_snapshot_run_is_idempotent_and_recovers_from_a_crashed_attempt(hand_built, settings):
    snapshot = export_snapshot_create(project=hand_built["project"], created_by=hand_built["engineer"], options={"format": "pairs"})
    # A worker died mid-run: the row says running and a partial directory is left behind.
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(status=JobStatus.RUNNING, rows_done=1)
    leftover = Path(settings.MEDIA_ROOT) / "exports" / f".{snapshot.id}.dead.partial"
    leftover.mkdir(parents=True)
    export_snapshot_run(snapshot_id=snapshot.id)  # the redelivered message
    snapshot.refresh_from_db()
    assert snapshot.status == JobStatus.SUCCEEDED and snapshot.directory == f"exports/{snapshot.id}"
    first = (snapshot.manifest["created_at"], snapshot.finished_at)
    export_snapshot_run(snapshot_id=snapshot.id)  # delivered once more: nothing happens
    snapshot.refresh_from_db()
    assert (snapshot.manifest["created_at"], snapshot.finished_at) == first
    assert manifest_verify(directory=Path(settings.MEDIA_ROOT) / snapshot.directory) == []


def test_a_failed_export_is_recorded_on_the_snapshot(hand_built):
    snapshot = ExportSnapshot.objects.create(project=hand_built["project"], format="pairs", options={"format": "pairs", "seed": -1})
    with pytest.raises(ApplicationError):
        export_snapshot_run(snapshot_id=snapshot.id)
    snapshot.refresh_from_db()
    assert snapshot.status == JobStatus.FAILED and "seed" in snapshot.error and snapshot.finished_at


@pytest.mark.needs_redis
@pytest.mark.slow
def test_a_real_worker_runs_the_export_with_progress(celery_worker, settings):
    project, engineer, _ = engineer_project("worker")
    many_tasks(project, [make_user("w1"), make_user("w2")], 30)
    snapshot = export_snapshot_create(project=project, created_by=engineer, options={"format": "rankings", "file_format": "parquet"})
    deadline = time.monotonic() + 300  # generous: a busy machine, never a speed test
    while time.monotonic() < deadline:
        snapshot.refresh_from_db()
        if snapshot.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            break
        time.sleep(0.3)
    assert snapshot.status == JobStatus.SUCCEEDED, (snapshot.error, celery_worker.log()[-3000:])
    assert snapshot.rows_done == snapshot.rows_total == 30
    root = Path(settings.MEDIA_ROOT) / snapshot.directory
    assert manifest_verify(directory=root) == []
    assert sum(info["rows"] for info in snapshot.files.values()) == 30
    assert "export_snapshot_run_task" in celery_worker.log()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.mark.needs_redis
@pytest.mark.slow
def test_an_export_whose_worker_is_killed_mid_run_is_redelivered_and_completes_once(transactional_db, settings, monkeypatch):
    from config.celery import app
    from tests.celery_worker import CeleryWorker
    from tests.factories import bulk_tasks

    project, engineer, _ = engineer_project("crash")
    bulk_tasks(project, [make_user("k1"), make_user("k2")], 600)
    env = {"EXPORT_CHUNK_TASKS": "10"}  # many small chunks, so the kill lands mid-export
    worker = CeleryWorker(queues=("default",), extra_env=env)
    worker.start()
    try:
        snapshot = export_snapshot_create(project=project, created_by=engineer,
                                          options={"format": "rankings", "file_format": "parquet"})
        row = ExportSnapshot.objects.filter(pk=snapshot.pk)
        wait_for(lambda: row.filter(status=JobStatus.RUNNING, rows_done__gte=50).exists(), 300, "the export to start")
        worker.kill()
    finally:
        worker.stop()
    killed = row.get()
    assert killed.status == JobStatus.RUNNING and killed.rows_done < 600, "the export finished before the kill"
    exports = Path(settings.MEDIA_ROOT) / "exports"
    assert not (exports / str(snapshot.id)).exists()  # nothing half-written shows

    # No purge: on a busy machine the export outlives the 10 s visibility timeout before the kill,
    # so its message may already be back in the queue; purging it would lose the export.
    monkeypatch.setattr(app.control, "purge", lambda: 0)
    again = CeleryWorker(queues=("default",), extra_env=env)
    again.start()
    try:
        def redelivered_and_finished() -> bool:
            # The unacknowledged message becomes visible again after the visibility timeout (10 s
            # in tests). Workers sweep for such messages only every ~100 s (kombu's default
            # throttle), so run the same sweep from here each second instead of waiting for theirs.
            with app.connection_for_write() as conn:
                conn.default_channel.qos.restore_visible(num=100, interval=1)
            return row.filter(status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED]).exists()

        wait_for(redelivered_and_finished, 300, "the redelivered export")
    finally:
        again.stop()
    done = row.get()
    assert done.status == JobStatus.SUCCEEDED, (done.error, again.log()[-3000:])
    assert done.rows_done == done.rows_total == 600
    assert manifest_verify(directory=Path(settings.MEDIA_ROOT) / done.directory) == []
    assert sum(info["rows"] for info in done.files.values()) == 600
    assert not list(exports.glob(f".{snapshot.id}.*"))  # the killed attempt's partial files are gone
