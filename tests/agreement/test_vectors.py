"""Agreement from the rank and display vectors written at submit time: the same report as decoding the tiers."""
from __future__ import annotations

import numpy as np
import pytest

from annotation.models import Ranking
from annotation.services.agreement import agreement_compute, rank_data_load
from annotation.services.assignment import assignment_display, assignment_lease_next
from annotation.services.ranking import ranking_submit
from annotation.services.ranking_stats import ranking_vectors
from tests.agreement_fixtures import simulate_crowd
from tests.ranking_helpers import make_member, make_project

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]


def report(project, packed: bool) -> dict:
    data, names, _ = rank_data_load(project=project, packed=packed)
    return agreement_compute(data, bootstrap=200, seed=3, annotator_names=names)


def test_the_vectors_hold_ranks_with_ties_and_display_positions_in_response_id_order():
    ranks, display = ranking_vectors(tiers=[[30], [10, 20]], display_order=[20, 30, 10])
    assert np.frombuffer(ranks, dtype="<f4").tolist() == [2.5, 2.5, 1.0]  # responses 10, 20, 30
    assert np.frombuffer(display, dtype="<i2").tolist() == [2, 0, 1]


def test_a_submission_stores_its_vectors():
    project, _ = make_project(name="Vectors", tasks=1, k=3, allow_ties=True)
    ann = make_member(project, "vec")
    lease = assignment_lease_next(project=project, annotator=ann.user)
    shown = assignment_display(assignment=lease)
    result = ranking_submit(assignment_id=lease.pk, annotator=ann.user, ranking=[[shown[2][0]], [shown[0][0], shown[1][0]]])
    stored = Ranking.objects.get(pk=result.ranking.pk)
    expected = ranking_vectors(tiers=stored.tiers, display_order=lease.display_order)
    assert (bytes(stored.rank_vector), bytes(stored.display_vector)) == expected
    slots = sorted(lease.display_order)
    assert np.frombuffer(bytes(stored.rank_vector), dtype="<f4")[slots.index(shown[2][2])] == 1.0


def test_the_vector_load_gives_the_report_the_json_load_gives_gold_and_position_included():
    crowd = simulate_crowd(name="vectors", n_tasks=60, per_task=4, seed=1, gold_every=5, first_position_boost=0.5)
    fast, slow = report(crowd.built.project, True), report(crowd.built.project, False)
    assert fast == slow
    assert fast["rankings"] == 240 and fast["alpha"] is not None


def test_rankings_written_before_the_vectors_are_decoded_from_their_tiers():
    crowd = simulate_crowd(name="legacy", n_tasks=30, per_task=3, seed=2)
    expected = report(crowd.built.project, False)
    Ranking.objects.filter(pk=Ranking.objects.filter(project=crowd.built.project).first().pk).update(rank_vector=None)
    assert report(crowd.built.project, True) == expected


def test_the_migration_fills_the_vectors_of_rankings_written_before_them():
    import importlib

    from django.apps import apps

    migration = importlib.import_module("annotation.migrations.0010_speed")
    crowd = simulate_crowd(name="backfill", n_tasks=10, per_task=3, seed=6)
    rows = Ranking.objects.filter(project=crowd.built.project)
    expected = {r.pk: (bytes(r.rank_vector), bytes(r.display_vector)) for r in rows}
    rows.update(rank_vector=None, display_vector=None)
    migration.fill_vectors(apps, None)
    assert {r.pk: (bytes(r.rank_vector), bytes(r.display_vector)) for r in rows.all()} == expected
