"""Serializers of the task browser and curation (api/views/curation.py): shapes for the schema; the
rules are annotation/services/task_browse.py's."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from annotation.services.task_browse import ORDERINGS, STATUSES, task_list_item

STATUS_HELP = "One of " + ", ".join(STATUSES) + "."


class TaskListQuerySerializer(serializers.Serializer):
    # Documentation of the query parameters only: the service parses them (one 400 naming each bad one).
    status = serializers.CharField(required=False, help_text=STATUS_HELP)
    gold = serializers.BooleanField(required=False)
    flagged = serializers.BooleanField(required=False, help_text="Some ranking flagged a response.")
    excluded = serializers.BooleanField(required=False, help_text="Excluded from exports.")
    judged = serializers.BooleanField(required=False, help_text="Some judge run ranked the task (true) or none did (false).")
    agreement_lt = serializers.FloatField(required=False, min_value=0, max_value=1)
    agreement_gt = serializers.FloatField(required=False, min_value=0, max_value=1)
    rankings = serializers.IntegerField(required=False, min_value=0, help_text="Exactly this many rankings.")
    run = serializers.IntegerField(required=False, help_text="Tasks over this generation run's responses.")
    q = serializers.CharField(required=False, help_text="Full-text search over the prompt and the responses.")
    ordering = serializers.ChoiceField(choices=list(ORDERINGS), required=False, default="-created_at")


class TaskListItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField(help_text=STATUS_HELP)
    is_gold = serializers.BooleanField()
    rankings = serializers.IntegerField()
    overlap = serializers.IntegerField()
    agreement = serializers.FloatField(allow_null=True)
    priority = serializers.IntegerField()
    excluded = serializers.BooleanField()
    prompt_external_id = serializers.CharField()
    prompt_first_line = serializers.CharField()
    created_at = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return super().to_representation(task_list_item(instance) if not isinstance(instance, dict) else instance)


class TaskResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()
    run = serializers.IntegerField(allow_null=True)
    run_model = serializers.CharField(allow_null=True)
    model = serializers.CharField()
    sample_index = serializers.IntegerField()
    token_count = serializers.IntegerField(allow_null=True)
    finish_reason = serializers.CharField()
    prompt_truncated = serializers.BooleanField()


class TaskRankingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    annotator = serializers.CharField(help_text="The username for admins, a per-project pseudonym for engineers.")
    tiers = serializers.JSONField()
    flags = serializers.JSONField()
    rating = serializers.IntegerField(allow_null=True)
    rationale = serializers.CharField()
    duration_seconds = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()


class TaskConsensusSerializer(serializers.Serializer):
    tiers = serializers.JSONField(help_text="Borda consensus, best first.")
    borda = serializers.DictField(child=serializers.FloatField())
    bradley_terry = serializers.DictField(child=serializers.FloatField())
    votes = serializers.IntegerField()


class TaskJudgeComparisonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    response_a = serializers.IntegerField(help_text="The pair's lower response id.")
    response_b = serializers.IntegerField()
    principle = serializers.CharField()
    principle_index = serializers.IntegerField()
    p_first = serializers.FloatField(allow_null=True, help_text="P(response_a preferred) with response_a shown first.")
    p_second = serializers.FloatField(allow_null=True, help_text="P(response_a preferred) with response_a shown second.")
    prob_a = serializers.FloatField(allow_null=True, help_text="The mean of both orders.")
    orders_agree = serializers.BooleanField(allow_null=True, help_text="Both orders preferred the same response.")
    hard_label = serializers.BooleanField(help_text="The server gave a letter but no probabilities.")
    failed = serializers.BooleanField()
    failed_text = serializers.CharField(allow_blank=True)


class TaskJudgeRunSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    backend = serializers.CharField()
    model = serializers.CharField()
    model_revision = serializers.CharField(allow_blank=True)
    status = serializers.CharField()
    constitution_version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    tiers = serializers.JSONField(allow_null=True, help_text="The judge's ranking, best first; null when it wrote none.")
    confident = serializers.BooleanField(allow_null=True)
    comparisons = TaskJudgeComparisonSerializer(many=True)


class TaskPromptSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    messages = serializers.JSONField()
    metadata = serializers.JSONField()


class TaskDetailSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField()
    status = serializers.CharField(help_text=STATUS_HELP)
    is_gold = serializers.BooleanField()
    gold_ranking = serializers.JSONField(allow_null=True)
    priority = serializers.IntegerField()
    overlap = serializers.IntegerField()
    rankings_count = serializers.IntegerField()
    active_count = serializers.IntegerField()
    is_complete = serializers.BooleanField()
    excluded = serializers.BooleanField()
    agreement = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()
    prompt = TaskPromptSerializer()
    responses = TaskResponseSerializer(many=True)
    rankings = TaskRankingSerializer(many=True)
    consensus = TaskConsensusSerializer()
    judge = TaskJudgeRunSerializer(many=True, help_text="Each judge run that judged the task, oldest first.")


class TaskPriorityInputSerializer(serializers.Serializer):
    priority = serializers.JSONField(help_text="A 32-bit integer; higher is served first.")


class TaskExcludedInputSerializer(serializers.Serializer):
    excluded = serializers.BooleanField()


class TaskStateOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    overlap = serializers.IntegerField()
    priority = serializers.IntegerField()
    excluded = serializers.BooleanField()
    is_complete = serializers.BooleanField()
    rankings_count = serializers.IntegerField(source="submitted_count")


class TaskBulkInputSerializer(serializers.Serializer):
    action = serializers.CharField(help_text="more_rankings, priority, exclude or include.")
    priority = serializers.JSONField(required=False, help_text="For action=priority: a 32-bit integer.")
    filters = serializers.DictField(required=False, default=dict, help_text="The list's filters (status, gold, q, ...).")


class TaskBulkOutputSerializer(serializers.Serializer):
    action = serializers.CharField()
    tasks = serializers.IntegerField(help_text="How many tasks matched and were changed.")
    filters = serializers.DictField()
