"""A big project fast: N tasks of K responses written by four INSERT ... SELECT statements on
PostgreSQL (generate_series), names from the models. Used by test_scale.py and bench/curation.py.

Agreements are spread deterministically over [0, 1] (a tenth of the tasks have none, as tasks
below two rankings do), priorities over -2..2, one task in 50 is gold, creation times one second
apart. No ranking rows: the list reads the counters and the stored agreement, never the rankings.
"""
from __future__ import annotations

from django.db import connection, transaction

from annotation.models import Prompt, RankingTask, Response, ResponseSearchVector
from annotation.sql.names import Names, render


@transaction.atomic
def big_project_fill(*, project_id: int, tasks: int, k: int = 3) -> None:
    p, r, t = Names(Prompt), Names(Response), Names(RankingTask)
    tr = Names(RankingTask.responses.through)
    statements = [
        (render(
            "INSERT INTO {p} ({p.project}, {p.external_id}, {p.messages}, {p.metadata}, {p.content_hash}, {p.created_at}) "
            "SELECT %s, 'q' || g, jsonb_build_array(jsonb_build_object('role', 'user', 'content', "
            "'Question ' || g || ': how many ' || (ARRAY['apples','rivers','planets','tokens','lemmas'])[1 + g %% 5] || ' are there?')), "
            "'{{}}'::jsonb, md5('prompt' || %s || '-' || g), now() - (%s - g) * interval '1 second' "
            "FROM generate_series(1, %s) g", p=p), [project_id, project_id, tasks, tasks]),
        (render(
            "INSERT INTO {r} ({r.prompt}, {r.run}, {r.sample_index}, {r.text}, {r.text_hash}, {r.finish_reason}, {r.token_count}, "
            "{r.model_name}, {r.prompt_truncated}, {r.created_at}) "
            "SELECT {p.id}, NULL, s, 'Answer ' || s || ' to ' || {p.external_id} || ': perhaps ' || ({p.id} %% 97) || ' of them.', "
            "md5({p.id} || '-' || s), 'stop', 8, '', false, {p.created_at} "
            "FROM {p} CROSS JOIN generate_series(0, %s) s WHERE {p.project} = %s", p=p, r=r), [k - 1, project_id]),
        (render(
            "INSERT INTO {t} ({t.project}, {t.prompt}, {t.overlap}, {t.is_gold}, {t.gold_ranking}, {t.priority}, {t.submitted_count}, "
            "{t.active_count}, {t.is_complete}, {t.agreement}, {t.excluded}, {t.task_type}, {t.created_at}) "
            "SELECT %s, {p.id}, 3, {p.id} %% 50 = 0, NULL, ({p.id} %% 5) - 2, 1 + {p.id} %% 3, 0, {p.id} %% 3 = 2, "
            "CASE WHEN {p.id} %% 10 = 0 THEN NULL ELSE (({p.id} * 7919) %% 1001) / 1000.0 END, false, 'ranking', {p.created_at} "
            "FROM {p} WHERE {p.project} = %s", p=p, t=t), [project_id, project_id]),
        (render(
            "INSERT INTO {tr} ({tr.rankingtask}, {tr.response}) SELECT {ta.id}, {ra.id} FROM {ta} ta JOIN {ra} ra "
            "ON {ra.prompt} = {ta.prompt} WHERE {ta.project} = %s", ta=Names(RankingTask, "ta"), ra=Names(Response, "ra"), tr=tr),
         [project_id]),
    ]
    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
        # As autovacuum would after a bulk load; the responses' vectors (written by the trigger) included.
        cursor.execute("ANALYZE " + render("{p}, {r}, {t}, {tr}, {s}", p=p, r=r, t=t, tr=tr, s=Names(ResponseSearchVector)))
