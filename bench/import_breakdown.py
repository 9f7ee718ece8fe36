"""Where the database's time goes in a bulk import with ready-made responses, part by part.

Run after `bench/import.py --prompts N --responses 4 --no-before --keep` (it leaves the database
annot_bench_import with a project "bench-N-after"). In one transaction that is rolled back, this
copies that project's prompts, responses, tasks and task-response links once more (INSERT ... SELECT,
the same rows COPY wrote) under EXPLAIN ANALYZE, with the constraints checked at each statement's
end as the import does, and prints per table the time of the insert itself (heap, indexes, WAL)
and of each trigger: the foreign-key checks, one call per row, and the responses' search trigger.
`--without` drops indexes or sets session_replication_role inside the transaction first (scratch
database, superuser), to measure what each costs. EXPLAIN ANALYZE's own timing adds some overhead
to every part alike, so read the shares, not the totals.

    .venv/bin/python bench/import.py --prompts 100000 --responses 4 --no-before --keep
    .venv/bin/python bench/import_breakdown.py --prompts 100000 [--without prompt_messages_fts]
"""
from __future__ import annotations

import argparse
import os
import re
import sys

import psycopg

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/annot_bench_import"

# Each copies the rows of the project that bench/import.py loaded, into the same tables.
STATEMENTS = {
    "prompts": """INSERT INTO annotation_prompt (external_id, messages, metadata, content_hash, created_at, project_id)
        SELECT external_id, messages, metadata, md5(content_hash), created_at, project_id FROM annotation_prompt WHERE project_id = %(p)s""",
    "responses": """INSERT INTO annotation_response (prompt_id, run_id, sample_index, text, text_hash, finish_reason, token_count,
        model_name, prompt_truncated, created_at)
        SELECT r.prompt_id, NULL, r.sample_index + 100, r.text, r.text_hash, '', NULL, '', false, now()
        FROM annotation_response r JOIN annotation_prompt p ON p.id = r.prompt_id WHERE p.project_id = %(p)s""",
    "tasks": """INSERT INTO annotation_rankingtask (project_id, prompt_id, overlap, target_overlap, priority_margin, is_gold, gold_ranking,
        priority, submitted_count, active_count, is_complete, agreement, excluded, task_type, evaluation_id, created_at)
        SELECT project_id, prompt_id, overlap, target_overlap, priority_margin, is_gold, gold_ranking, priority, 0, 0, false, NULL, false,
        task_type, evaluation_id, now() FROM annotation_rankingtask WHERE project_id = %(p)s""",
    # The copied tasks (ids above %(t)s, the largest before) link the responses of their originals.
    "links": """INSERT INTO annotation_rankingtask_responses (rankingtask_id, response_id)
        SELECT copy.id, l.response_id FROM annotation_rankingtask copy
        JOIN annotation_rankingtask t ON t.prompt_id = copy.prompt_id AND t.project_id = copy.project_id AND t.id <= %(t)s
        JOIN annotation_rankingtask_responses l ON l.rankingtask_id = t.id WHERE copy.project_id = %(p)s AND copy.id > %(t)s""",
}
_TRIGGER = re.compile(r"^Trigger (?:for constraint )?(\S+?): time=([\d.]+) calls=(\d+)")
_INSERT = re.compile(r"^Insert on \S+ .*actual time=[\d.]+\.\.([\d.]+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=100_000, help="the N of the project bench/import.py kept")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--without", action="append", default=[],
                        help="an index to drop first, or 'triggers' (session_replication_role = replica); repeatable")
    args = parser.parse_args()

    with psycopg.connect(args.database_url) as conn:
        row = conn.execute("SELECT id FROM annotation_project WHERE slug = %s", [f"bench-{args.prompts}-after"]).fetchone()
        if row is None:
            sys.exit(f"no project bench-{args.prompts}-after: run bench/import.py --prompts {args.prompts} --responses 4 --no-before --keep")
        last_task = conn.execute("SELECT coalesce(max(id), 0) FROM annotation_rankingtask").fetchone()[0]
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # as the import: each statement's checks at its end
        conn.execute("SELECT set_config('annotation.defer_response_vectors', 'on', true)")  # as the import: queue the vectors
        for what in args.without:
            if what == "triggers":
                conn.execute("SET LOCAL session_replication_role = replica")
            else:
                conn.execute(f'DROP INDEX "{what}"')  # inside the transaction: rolled back with it
        total = 0.0
        print(f"import breakdown: project bench-{args.prompts}-after copied once more, rolled back"
              + (f"; without {', '.join(args.without)}" if args.without else ""))
        print(f"{'table':>10} {'part':>68} {'ms':>9} {'calls':>8}")
        for table, statement in STATEMENTS.items():
            plan = [r[0].strip() for r in conn.execute("EXPLAIN (ANALYZE, COSTS OFF) " + statement, {"p": row[0], "t": last_task}).fetchall()]
            for line in plan:
                if m := _INSERT.match(line):
                    total += float(m.group(1))
                    print(f"{table:>10} {'insert (heap, indexes, WAL; the SELECT feeding it included)':>68} {float(m.group(1)):>9.0f}")
                elif m := _TRIGGER.match(line):
                    total += float(m.group(2))
                    print(f"{table:>10} {m.group(1)[:68]:>68} {float(m.group(2)):>9.0f} {int(m.group(3)):>8}")
        conn.rollback()
    print(f"{'':>10} {'total':>68} {total:>9.0f}")
    print("reproduce: .venv/bin/python bench/import_breakdown.py --prompts " + str(args.prompts)
          + "".join(f" --without {w}" for w in args.without))


if __name__ == "__main__":
    main()
