"""A hand-built project whose rankings exercise every column the readers and row builders touch."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from annotation.models import Ranking, Role
from tests.factories import engineer_project, make_run, make_task, make_user, rank


@pytest.fixture
def tricky():
    """Task 1 (generated, system prompt): u1 A > B > C with a rationale full of escapes, u2 ties B = C and
    flags C, u3 ranks with a rating and no duration; task 2 (imported): D > E by u1 only; u1's first
    ranking is stamped on a whole second (no microseconds) and u2's with microseconds."""
    project, engineer, annotator = engineer_project("tricky")
    u1, u2, u3 = make_user("t-u1"), make_user("t-u2"), make_user("t-u3")
    run = make_run(project, system_prompt='Be "brief"\n\tand kind ✓.', temperature=0.3, top_p=1.0)
    t1, (a, b, c) = make_task(project, 'Say "hi" in Ελληνικά\x01', ["Γειά!", 'He said "hi"\\n', "🙂 \u2028 fine"], run=run)
    first = rank(t1, u1, [[a], [b], [c]], rationale='because "A" is\nright \\ ✓\x07', duration=3.25,
                 at=timezone.now().replace(microsecond=0) - dt.timedelta(hours=2))
    rank(t1, u2, [[a], [b, c]], flags={c: ["harmful", "off-topic"]}, duration=None,
         at=timezone.now().replace(microsecond=123450) - dt.timedelta(hours=1))
    r3 = rank(t1, u3, [[b], [a], [c]], duration=1e-7)
    Ranking.objects.filter(pk=r3.pk).update(rating=4)
    t2, (d, e) = make_task(project, "Name a colour.", ["Red.", "Blue."])
    rank(t2, u1, [[d], [e]])
    return {"project": project, "engineer": engineer, "annotator": annotator, "users": (u1, u2, u3), "run": run,
            "t1": t1, "t2": t2, "ids": {"a": a, "b": b, "c": c, "d": d, "e": e}, "first": first, "role": Role}
