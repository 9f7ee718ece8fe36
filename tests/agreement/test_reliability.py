"""Reliability weights: estimated from agreement alone, stored with the agreement report, and used by the
people's consensus wherever the project weighs its annotators (exports, the judge comparison, the task page)."""
from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from annotation.models import Project, RankingTask
from annotation.services.agreement_cache import agreement_report_refresh
from annotation.services.consensus import task_consensus
from annotation.services.export import export_options_from_input, export_write
from annotation.services.judge_agreement import consensus_labels
from annotation.services.reliability import MIN_SKILL_PAIRS, annotator_skills, consensus_weights
from annotation.services.task_browse import task_detail
from tests.agreement_fixtures import add_rankings, add_tasks, pair_accuracy, simulate_crowd
from tests.factories import api_client, make_user

NOISE = (0.2, 0.5, 1.0, 2.0)  # four honest annotators, from careful to careless, and the spammer


def _weighted_crowd(name: str):
    crowd = simulate_crowd(name=name, n_tasks=150, k=4, noise=NOISE, per_task=3, seed=11)
    Project.objects.filter(pk=crowd.built.project.pk).update(consensus_weighting="reliability")
    crowd.built.project.refresh_from_db()
    return crowd


@pytest.mark.django_db
@pytest.mark.needs_postgres
def test_weights_follow_how_careful_annotators_are_and_make_the_consensus_more_accurate():
    crowd = _weighted_crowd("weights")
    project = crowd.built.project
    assert consensus_weights(project=project).by_user == {}  # no report yet: every ranking counts the same
    report = agreement_report_refresh(project_id=project.pk).result
    rows = {r["username"]: r for r in report["annotators"]}
    weights = [rows[name]["weight"] for name in crowd.honest]
    assert weights == sorted(weights, reverse=True), weights  # the more careful, the more a ranking counts
    assert rows[crowd.spammer]["weight"] < 0.2 < min(weights), rows[crowd.spammer]
    assert all(r["skill_pairs"] >= MIN_SKILL_PAIRS for r in rows.values()) and "weight_rule" in report

    api = api_client(crowd.built.admin).get(f"/api/v1/projects/{project.slug}/agreement/").json()
    assert {r["username"]: r["weight"] for r in api["annotators"]} == {name: r["weight"] for name, r in rows.items()}
    assert api["weight_rule"] == report["weight_rule"]
    page = Client()
    page.force_login(crowd.built.admin)
    html = page.get(f"/projects/{project.slug}/dashboard/").content.decode()
    assert "this project's consensus" in html and f"{rows[crowd.honest[0]]['weight']:.2f}" in html

    stored = consensus_weights(project=project)
    assert stored.report_computed_at is not None
    assert stored.by_user == {crowd.built.users[name].pk: rows[name]["weight"] for name in rows}
    # Against the hidden truth, the weighted consensus orders more pairs right than one vote each.
    plain = weighted = 0.0
    for t, ranked in crowd.rankings.items():
        tiers = [tiers for _, tiers in ranked]
        plain += pair_accuracy(task_consensus(tiers).tiers, crowd.truth[t])
        weighted += pair_accuracy(task_consensus(tiers, weights=[rows[n]["weight"] for n, _ in ranked]).tiers, crowd.truth[t])
    assert weighted > plain + 3, (weighted, plain)  # of 150 tasks


@pytest.mark.django_db
@pytest.mark.needs_postgres
def test_the_pairs_export_follows_the_careful_annotator_where_one_vote_each_is_a_tie(tmp_path):
    crowd = _weighted_crowd("weighted-export")
    built = crowd.built
    add_tasks(built, n_tasks=1, k=4, overlap=3)
    ids = built.responses[-1]
    careful, spammer = built.users[crowd.honest[0]], built.users[crowd.spammer]
    order = [[rid] for rid in ids]
    add_rankings(built, [(len(built.tasks) - 1, careful, order, ids, 10.0),
                         (len(built.tasks) - 1, spammer, order[::-1], ids, 3.0)])
    agreement_report_refresh(project_id=built.project.pk)
    prompt_id = built.tasks[-1].prompt_id

    def rows_of_task(name: str) -> tuple[dict, list[dict]]:
        out = tmp_path / name
        manifest = export_write(project=Project.objects.get(pk=built.project.pk),
                                options=export_options_from_input({"format": "pairs"}), out_dir=out, created_by="t")
        rows = [json.loads(line) for split in ("train", "test") for line in (out / f"{split}.jsonl").read_text().splitlines()]
        return manifest, [r for r in rows if r["prompt_id"] == prompt_id]

    manifest, rows = rows_of_task("weighted")
    assert manifest["policy"]["consensus_weights"]["weighting"] == "reliability"
    assert manifest["policy"]["consensus_weights"]["report_computed_at"] is not None
    # Every pair, in the careful annotator's order; the votes stay one each, the margin is the weighted share.
    assert sorted((r["chosen_id"], r["rejected_id"]) for r in rows) == sorted(combinations(ids, 2)), manifest["counts"]
    assert {(r["votes_chosen"], r["votes_rejected"]) for r in rows} == {(1, 1)}
    assert all(r["margin"] > 0.8 for r in rows), [r["margin"] for r in rows]

    # The task page's consensus is the same weighted one.
    task = RankingTask.objects.get(pk=built.tasks[-1].pk)
    task.project = Project.objects.get(pk=built.project.pk)
    assert task_detail(task=task, role="admin")["consensus"]["tiers"] == order

    Project.objects.filter(pk=built.project.pk).update(consensus_weighting="none")
    manifest, rows = rows_of_task("unweighted")
    assert rows == [] and "consensus_weights" not in manifest["policy"]  # a 1-1 split on every pair: all tied
    task.project = Project.objects.get(pk=built.project.pk)
    assert task_detail(task=task, role="admin")["consensus"]["tiers"] == [sorted(ids, key=str)]  # one tier, in string order


def test_weights_decide_a_split_the_plain_consensus_leaves_tied():
    split = [[[1], [2]], [[2], [1]]]
    assert task_consensus(split).tiers == [[1, 2]]
    assert task_consensus(split, weights=[2.0, 0.5]).tiers == [[1], [2]]
    assert task_consensus(split, weights=[0.5, 2.0]).tiers == [[2], [1]]
    assert consensus_labels(split) == {(1, 2): "tie"}
    assert consensus_labels(split, [0.5, 2.0]) == {(1, 2): "b"}
    with pytest.raises(ValueError, match="1 weights for 2 rankings"):
        task_consensus(split, weights=[1.0])


def test_an_annotator_with_too_few_compared_pairs_counts_the_median_weight():
    # Annotators 0-2 agree on 90 of 100 pairs with each other; annotator 3 compared 5 pairs with annotator 0.
    agree, compared = np.zeros((4, 4)), np.zeros((4, 4))
    for i, j in combinations(range(3), 2):
        agree[i, j] = agree[j, i] = 90
        compared[i, j] = compared[j, i] = 100
    agree[0, 3] = agree[3, 0] = 5
    compared[0, 3] = compared[3, 0] = 5
    skills = annotator_skills(agree=agree, compared=compared, n_annotators=4)
    assert np.allclose(skills.skill[:3], np.sqrt(0.8), atol=0.01)  # (1 + q^2) / 2 = 0.9
    assert np.isnan(skills.skill[3]) and skills.pairs.tolist() == [205, 200, 200, 5]
    assert skills.weight[3] == pytest.approx(np.median(skills.weight[:3]))


@pytest.mark.django_db
def test_an_unknown_weighting_is_refused_naming_the_setting():
    admin = make_user("weights-admin")
    type(admin).objects.filter(pk=admin.pk).update(is_staff=True)  # may create projects
    admin.refresh_from_db()
    bad = api_client(admin).post("/api/v1/projects/", {"name": "W", "consensus_weighting": "votes"}, format="json")
    assert bad.status_code == 400
    assert "must be one of none, reliability" in bad.json()["error"]["fields"]["consensus_weighting"][0]
    good = api_client(admin).post("/api/v1/projects/", {"name": "W", "consensus_weighting": "reliability"}, format="json")
    assert good.status_code == 201 and good.json()["consensus_weighting"] == "reliability"
    with pytest.raises(CommandError) as caught:
        call_command("create_project", "W2", "--consensus-weighting", "votes")
    assert caught.value.returncode == 2 and "consensus_weighting" in str(caught.value)
    assert not Project.objects.filter(name="W2").exists()
