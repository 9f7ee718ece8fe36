"""The judge against people on the tiny model fine-tuned in the test (real training, real forward passes).

A judge trained to prefer responses carrying the marker agrees with a crowd that shares that
preference and disagrees with a crowd that holds the reverse one; a judge trained to answer "A"
whatever it is shown has a low swap consistency and a high first-position rate.
"""
from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from annotation.models import JudgeRun, RunStatus
from tests.judge.finetune import SHORT_TEMPLATE, train_judge
from tests.judge.helpers import crowd_rank, judged_project

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def trained_judges(tiny_model_path, tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared CPU one thread trains the tiny model several times faster
    try:
        root = tmp_path_factory.mktemp("judges")
        # Always answering "A" is learnt in a few steps; the marker takes more.
        return {rule: train_judge(tiny_model_path, root / rule, rule=rule, steps=steps) for rule, steps in (("marker", 60), ("first", 30))}
    finally:
        torch.set_num_threads(threads)


def _judge_and_report(slug: str, model, capsys) -> dict:
    from annotation.models import Project

    Project.objects.filter(slug=slug).update(judge_prompt_template=SHORT_TEMPLATE)  # the project's own judge prompt
    call_command("judge", slug, "--backend", "transformers", "--model", str(model))
    assert JudgeRun.objects.get(project__slug=slug).status == RunStatus.SUCCEEDED
    capsys.readouterr()
    call_command("agreement", slug, "--json", "--fresh")
    return json.loads(capsys.readouterr().out)["judge"]


@pytest.mark.parametrize("crowd_prefers_marker", [True, False])
def test_a_judge_with_a_known_preference_agrees_with_a_crowd_that_shares_it_and_not_with_one_that_reverses_it(
        trained_judges, capsys, crowd_prefers_marker):
    slug = f"agree-{crowd_prefers_marker}".lower()
    project, tasks = judged_project(slug, 8, k=2)
    crowd_rank(project, tasks, people=3, prefer_marker=crowd_prefers_marker, noise_every=4)
    judge = _judge_and_report(slug, trained_judges["marker"], capsys)
    print(f"marker judge vs crowd prefer_marker={crowd_prefers_marker}: {json.dumps(judge)}")  # figures for the note
    agreement = judge["judge_human_agreement"]
    assert judge["comparisons"] == 8 and judge["compared_with_people"] == 8
    if crowd_prefers_marker:
        assert agreement["value"] >= 0.75 and agreement["n"] >= 6
    else:
        assert agreement["value"] <= 0.25 and agreement["n"] >= 6
    assert agreement["ci95"][0] <= agreement["value"] <= agreement["ci95"][1]
    # People: one of three reverses every fourth task, so two of its three pairs of people disagree there.
    people = judge["human_human_agreement"]
    assert (people["count"], people["n"]) == (3 * 8 - 2 * 2, 3 * 8)
    assert judge["swap_consistency"]["value"] >= 0.75
    assert [p["principle"] for p in judge["per_principle"]] and sum(p["comparisons"] for p in judge["per_principle"]) == 8


def test_a_position_biased_judge_shows_low_swap_consistency_and_a_high_first_position_rate(trained_judges, capsys):
    project, tasks = judged_project("biased", 8, k=2)
    crowd_rank(project, tasks, people=2)
    judge = _judge_and_report("biased", trained_judges["first"], capsys)
    print(f"position-biased judge: {json.dumps(judge)}")
    assert judge["swap_consistency"]["value"] <= 0.25
    assert judge["first_position_rate"]["value"] >= 0.9 and judge["first_position_rate"]["n"] == 16
    # Its flipped answers count as ties: nothing left to agree on without ties, all ties against a decided crowd.
    assert judge["judge_human_agreement"]["n"] <= 2
    assert judge["judge_human_agreement_with_ties"]["value"] <= 0.25
