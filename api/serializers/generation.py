"""Serializers for generation runs: one small input and one output serializer per operation."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.models import GenerationRun
from annotation.services.generation import (
    BACKENDS,
    MAX_BATCH_SIZE,
    MAX_N,
    MAX_NEW_TOKENS,
    MAX_TEMPERATURE,
    generation_run_progress,
    generation_run_summary,
)


class GenerationRunCreateInputSerializer(serializers.Serializer):
    """Omitted settings take the project's defaults (n: responses_per_prompt)."""

    backend = serializers.ChoiceField(choices=BACKENDS, default="transformers")
    model = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_N)
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=MAX_TEMPERATURE)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    max_new_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_NEW_TOKENS)
    seed = serializers.IntegerField(required=False, allow_null=True, min_value=-(2**31), max_value=2**31 - 1)
    system_prompt = serializers.CharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False)
    batch_size = serializers.IntegerField(required=False, default=8, min_value=1, max_value=MAX_BATCH_SIZE)

    def validate_top_p(self, value):
        if value is not None and value <= 0:
            raise serializers.ValidationError("must be a number with 0 < top_p <= 1")
        return value


class GenerationProgressSerializer(serializers.Serializer):
    prompts_total = serializers.IntegerField()
    prompts_done = serializers.IntegerField()
    prompts_failed = serializers.IntegerField()
    percent = serializers.FloatField()
    batches_total = serializers.IntegerField()
    batches_done = serializers.IntegerField()
    responses = serializers.IntegerField()
    tokens = serializers.IntegerField()
    tokens_per_second = serializers.FloatField(allow_null=True)
    worker_tokens_per_second = serializers.FloatField(allow_null=True)
    elapsed_seconds = serializers.FloatField(allow_null=True)


class GenerationSummarySerializer(serializers.Serializer):
    tasks_created = serializers.IntegerField()
    prompts_without_task = serializers.IntegerField()
    duplicates_merged = serializers.IntegerField()
    truncated_prompts = serializers.IntegerField()
    failed_prompts = serializers.DictField(child=serializers.CharField(), help_text="Prompt id -> reason.")


class GenerationRunOutputSerializer(serializers.ModelSerializer):
    project = serializers.IntegerField(source="project_id")
    progress = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField()

    class Meta:
        model = GenerationRun
        fields = [
            "id", "project", "status", "backend", "model_name", "model_revision", "n", "temperature", "top_p",
            "max_new_tokens", "seed", "system_prompt", "batch_size", "params", "source_training_job",
            "progress", "summary", "error", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(GenerationProgressSerializer)
    def get_progress(self, run: GenerationRun) -> dict:
        return generation_run_progress(run=run)

    @extend_schema_field(GenerationSummarySerializer)
    def get_summary(self, run: GenerationRun) -> dict:
        return generation_run_summary(run=run)
