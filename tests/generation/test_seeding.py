"""Seeded sampling with the real tiny model: the same seed gives the same samples whatever the batching."""
from __future__ import annotations

import pytest

from annotation.models import Response
from annotation.services.generation import generation_run_create
from tests.factories import add_prompts, make_project, numbered_prompts
from workers.tasks.generation import generate_batch

pytestmark = [pytest.mark.django_db]


def _texts(run) -> list[tuple[int, int, str]]:
    rows = Response.objects.filter(run=run).order_by("prompt_id", "sample_index")
    return list(rows.values_list("prompt_id", "sample_index", "text"))


def _run(project, **settings):
    run = generation_run_create(project=project, n=3, max_new_tokens=12, enqueue=False, **settings)
    for batch in run.batches:
        generate_batch.apply(args=[run.pk, batch])
    return run


def test_the_same_seed_gives_the_same_samples_whatever_the_batch_size(tiny_model_path):
    project = make_project("Seeded", responses_per_prompt=3)
    add_prompts(project, numbered_prompts(9))

    one_by_one = _texts(_run(project, seed=11, batch_size=1))
    together = _texts(_run(project, seed=11, batch_size=9))
    in_fours = _texts(_run(project, seed=11, batch_size=4))
    other_seed = _texts(_run(project, seed=12, batch_size=9))

    assert len(one_by_one) == 27
    assert one_by_one == together == in_fours
    # The seed still matters, and a prompt's samples differ from each other.
    assert [t for *_, t in other_seed] != [t for *_, t in together]
    assert all(len({t for p, _, t in together if p == prompt}) > 1 for prompt, _, _ in together)
