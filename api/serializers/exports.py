"""Serializers for exports. Types only: the rules (and the full validation) are in annotation.services.export."""
from rest_framework import serializers

from annotation.services.export import FILE_FORMATS, FORMATS, POLICIES


class ExportCreateInputSerializer(serializers.Serializer):
    """Documents the body; annotation.services.export validates it and rejects unknown fields."""

    format = serializers.ChoiceField(choices=FORMATS)
    file_format = serializers.ChoiceField(choices=FILE_FORMATS, required=False, default="jsonl")
    test_fraction = serializers.FloatField(required=False, help_text="Share of prompts in the test split, 0 <= f < 1.")
    seed = serializers.IntegerField(required=False, help_text="Seed of the prompt-disjoint split.")
    policy = serializers.ChoiceField(choices=POLICIES, required=False, help_text="pairs: which consensus pairs to emit.")
    min_agreement = serializers.FloatField(required=False, allow_null=True)
    min_votes = serializers.IntegerField(required=False)
    exclude_flagged = serializers.BooleanField(required=False)
    exclude_gold = serializers.BooleanField(required=False)
    annotators = serializers.ListField(child=serializers.CharField(), required=False, help_text="Usernames.")
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    desirable_tiers = serializers.IntegerField(required=False)
    undesirable_tiers = serializers.IntegerField(required=False)


class ExportOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    format = serializers.CharField()
    file_format = serializers.CharField()
    options = serializers.JSONField()
    status = serializers.CharField()
    rows_done = serializers.IntegerField(help_text="Tasks processed so far.")
    rows_total = serializers.IntegerField(help_text="Tasks to process.")
    files = serializers.JSONField(help_text="File name -> {rows, bytes, sha256}.")
    manifest = serializers.JSONField()
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    download_url = serializers.SerializerMethodField()

    def get_download_url(self, obj) -> str:
        return f"/api/v1/exports/{obj.id}/download"
