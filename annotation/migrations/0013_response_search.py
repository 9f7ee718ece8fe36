import django.contrib.postgres.search
import django.db.models.deletion
from django.db import migrations, models

# PostgreSQL only (SQLite searches with icontains). Frozen here as first run; annotation.sql.curation
# holds the statements that read and fill these tables.
TRIGGER_FUNCTION = """CREATE OR REPLACE FUNCTION "annotation_response_search_rows"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- A transaction that set annotation.defer_response_vectors (a bulk import) queues its new
  -- responses for the fill; any other insert writes their vectors at once.
  IF current_setting('annotation.defer_response_vectors', true) = 'on' THEN
    INSERT INTO "annotation_response_search_pending" ("response_id") SELECT "id" FROM new_rows;
  ELSE
    INSERT INTO "annotation_response_search" ("response_id", "vector") SELECT "id", to_tsvector('english'::regconfig, "text") FROM new_rows;
  END IF;
  RETURN NULL;
END $$"""
FORWARD = [
    # Existing responses first, while the old expression index still serves searches.
    """INSERT INTO "annotation_response_search" ("response_id", "vector") """
    """SELECT r."id", to_tsvector('english'::regconfig, r."text") FROM "annotation_response" r ON CONFLICT DO NOTHING""",
    'CREATE INDEX IF NOT EXISTS "response_search_fts" ON "annotation_response_search" USING gin ("vector")',
    TRIGGER_FUNCTION,
    # One call per statement (a transition table): a COPY of thousands of rows costs one INSERT ... SELECT.
    'CREATE TRIGGER "annotation_response_search_rows" AFTER INSERT ON "annotation_response" '
    'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "annotation_response_search_rows"()',
    'DROP INDEX IF EXISTS "response_text_fts"',
]
BACKWARD = [
    """CREATE INDEX IF NOT EXISTS "response_text_fts" ON "annotation_response" USING gin ((to_tsvector('english'::regconfig, "text")))""",
    'DROP TRIGGER IF EXISTS "annotation_response_search_rows" ON "annotation_response"',
    'DROP FUNCTION IF EXISTS "annotation_response_search_rows"()',
    'DROP INDEX IF EXISTS "response_search_fts"',
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in FORWARD:
            schema_editor.execute(statement)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0012_project_consensus_weighting'),
    ]

    operations = [
        migrations.CreateModel(
            name='ResponseSearchPending',
            fields=[
                ('response_id', models.BigIntegerField(primary_key=True, serialize=False)),
            ],
            options={
                'db_table': 'annotation_response_search_pending',
            },
        ),
        migrations.CreateModel(
            name='ResponseSearchVector',
            fields=[
                ('response', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to='annotation.response')),
                ('vector', django.contrib.postgres.search.SearchVectorField()),
            ],
            options={
                'db_table': 'annotation_response_search',
            },
        ),
        migrations.RunPython(forward, backward),
    ]
