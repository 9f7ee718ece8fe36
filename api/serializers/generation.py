"""Serializers for generation runs: one small input and one output serializer per operation."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.models import GenerationRun
from annotation.services.fields import StrictSerializer
from annotation.services.generation import (
    BACKENDS,
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    MAX_N,
    MAX_NEW_TOKENS,
    MAX_TEMPERATURE,
    generation_run_progress,
    generation_run_summary,
)


class GenerationRunCreateInputSerializer(StrictSerializer):
    """JSON types only: the rules (ranges, backends, defaults) are GenerationOptions.problems(), checked by
    generation_run_create, the same for the API, the `generate` command and a training job's round two.

    Omitted settings take the project's defaults (n: responses_per_prompt). Unknown keys are refused
    (as exports refuse them), so a misspelt setting never silently takes the default.
    """

    backend = serializers.CharField(required=False, default="transformers", help_text=f"One of {', '.join(BACKENDS)}.")
    model = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False,
                                  help_text="HF id or local path (openai: the server's model name); default: the project's.")
    n = serializers.IntegerField(required=False, allow_null=True, help_text=f"Responses per prompt, 1 to {MAX_N}.")
    temperature = serializers.FloatField(required=False, allow_null=True, help_text=f"0 to {MAX_TEMPERATURE:g} (0: greedy).")
    top_p = serializers.FloatField(required=False, allow_null=True, help_text="0 < top_p <= 1.")
    max_new_tokens = serializers.IntegerField(required=False, allow_null=True, help_text=f"1 to {MAX_NEW_TOKENS}.")
    seed = serializers.IntegerField(required=False, allow_null=True, help_text="A 32-bit integer.")
    system_prompt = serializers.CharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False)
    batch_size = serializers.IntegerField(required=False, default=DEFAULT_BATCH_SIZE,
                                          help_text=f"Prompts per task and per generate call, 1 to {MAX_BATCH_SIZE}.")


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
