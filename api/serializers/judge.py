"""Serializers for constitutions and judge runs: JSON types only; the rules are in annotation.services.judge."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.models import Constitution, JudgeRun
from annotation.services.judge import BACKENDS, DEFAULT_BATCH_SIZE, PAIRS, judge_run_progress


class ConstitutionCreateInputSerializer(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, trim_whitespace=False,
                                 help_text="Markdown; each top-level list item is one principle.")


class ConstitutionOutputSerializer(serializers.ModelSerializer):
    project = serializers.IntegerField(source="project_id")

    class Meta:
        model = Constitution
        fields = ["id", "project", "version", "text", "principles", "created_at"]
        read_only_fields = fields


class JudgeRunCreateInputSerializer(serializers.Serializer):
    """JSON types only: the rules are JudgeOptions.problems(), checked by judge_run_create (as for the command)."""

    backend = serializers.CharField(required=False, default="transformers", help_text=f"One of {', '.join(BACKENDS)}.")
    model = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text="Local path or HF id (openai: the server's name).")
    base_url = serializers.CharField(required=False, allow_blank=True, default="", help_text="openai: the server.")
    api_key_env = serializers.CharField(required=False, allow_blank=True, default="",
                                        help_text="openai: the environment variable (on the workers) holding the key.")
    pairs = serializers.CharField(required=False, default="all", help_text=f"One of {', '.join(PAIRS)}.")
    limit = serializers.IntegerField(required=False, allow_null=True, default=None, help_text="Judge only the first N tasks.")
    batch_size = serializers.IntegerField(required=False, default=DEFAULT_BATCH_SIZE, help_text="Tasks per Celery task.")
    seed = serializers.IntegerField(required=False, default=0, help_text="Seeds the principle sampled per pair.")


class JudgeProgressSerializer(serializers.Serializer):
    tasks_total = serializers.IntegerField()
    tasks_done = serializers.IntegerField()
    tasks_failed = serializers.IntegerField()
    percent = serializers.FloatField()
    comparisons_total = serializers.IntegerField()
    comparisons_done = serializers.IntegerField()
    comparisons_failed = serializers.IntegerField()
    batches_total = serializers.IntegerField()
    batches_done = serializers.IntegerField()
    comparisons_per_second = serializers.FloatField(allow_null=True)
    elapsed_seconds = serializers.FloatField(allow_null=True)


class JudgeRunOutputSerializer(serializers.ModelSerializer):
    project = serializers.IntegerField(source="project_id")
    constitution_version = serializers.IntegerField(source="constitution.version")
    progress = serializers.SerializerMethodField()

    class Meta:
        model = JudgeRun
        fields = [
            "id", "project", "status", "backend", "model_name", "model_revision", "constitution_version", "pairs",
            "task_limit", "seed", "batch_size", "params", "progress", "summary", "error", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(JudgeProgressSerializer)
    def get_progress(self, run: JudgeRun) -> dict:
        return judge_run_progress(run=run)
