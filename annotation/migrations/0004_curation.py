from django.db import migrations, models


def create_search_indexes(apps, schema_editor):
    """GIN expression indexes for full-text search over prompts and responses (PostgreSQL only:
    SQLite searches with icontains and needs none)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    from annotation.sql.curation import create_indexes_sql

    for statement in create_indexes_sql():
        schema_editor.execute(statement)


def drop_search_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from annotation.sql.curation import drop_indexes_sql

    for statement in drop_indexes_sql():
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
