from django.db import migrations, models


# The DDL as this migration first ran it (0013 replaced the responses' index by a search table).
CREATE_INDEXES = [
    """CREATE INDEX IF NOT EXISTS "prompt_messages_fts" ON "annotation_prompt" USING gin ((to_tsvector('english'::regconfig, "messages")))""",
    """CREATE INDEX IF NOT EXISTS "response_text_fts" ON "annotation_response" USING gin ((to_tsvector('english'::regconfig, "text")))""",
]
DROP_INDEXES = ['DROP INDEX IF EXISTS "prompt_messages_fts"', 'DROP INDEX IF EXISTS "response_text_fts"']


def create_search_indexes(apps, schema_editor):
    """GIN expression indexes for full-text search over prompts and responses (PostgreSQL only:
    SQLite searches with icontains and needs none)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in CREATE_INDEXES:
        schema_editor.execute(statement)


def drop_search_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in DROP_INDEXES:
        schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ("annotation", "0003_task_agreement"),
    ]

    operations = [
        migrations.AddField(
            model_name="rankingtask",
            name="excluded",
            field=models.BooleanField(default=False),
        ),
        migrations.AddIndex(
            model_name="rankingtask",
            index=models.Index(fields=["project", "created_at", "id"], name="task_by_created"),
        ),
        migrations.AddIndex(
            model_name="rankingtask",
            index=models.Index(fields=["project", "priority", "id"], name="task_by_priority"),
        ),
        migrations.RunPython(create_search_indexes, drop_search_indexes),
    ]
