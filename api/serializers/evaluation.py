"""Serializers of head-to-head evaluations: JSON types only (the rules are annotation.services.evaluation's)."""
from rest_framework import serializers


class EvaluationCreateInputSerializer(serializers.Serializer):
    runs = serializers.ListField(child=serializers.IntegerField(), help_text="[A, B]: two generation run ids of this project.")


class EvaluationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    run_a = serializers.IntegerField(source="run_a_id")
    run_b = serializers.IntegerField(source="run_b_id")
    tasks_created = serializers.IntegerField()
    prompts_skipped = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class EvaluationReportSerializer(serializers.Serializer):
    evaluation = serializers.IntegerField()
    run_a = serializers.IntegerField()
    run_b = serializers.IntegerField()
    tasks = serializers.IntegerField()
    tasks_with_votes = serializers.IntegerField()
    votes = serializers.IntegerField()
    wins_b = serializers.IntegerField()
    wins_a = serializers.IntegerField()
    ties = serializers.IntegerField()
    win_rate = serializers.JSONField(help_text="value (wins of B / decisive votes), ci95 (Wilson, whole counts), successes, n.")
    win_rate_ties_half = serializers.FloatField(allow_null=True)
    length_controlled = serializers.JSONField(help_text="value (sigmoid of the intercept), ci95, length_coefficient, n.")
    mean_length_a = serializers.FloatField(allow_null=True)
    mean_length_b = serializers.FloatField(allow_null=True)
    b_better = serializers.BooleanField(help_text="The win rate's 95% interval lies above 0.5.")
    judge = serializers.JSONField(allow_null=True, help_text="The latest judge run on these tasks: one vote per task (wins_b, "
                                  "wins_a, ties: orders disagreeing or not confident), win_rate with its Wilson ci95, and "
                                  "agreement / agreement_with_ties with the people's majority (count, n, ci95); null before any.")
