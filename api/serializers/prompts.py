"""Serializers for prompts and prompt import."""
from rest_framework import serializers


class PromptMessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()


class PromptOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    messages = PromptMessageSerializer(many=True)
    metadata = serializers.DictField()
    created_at = serializers.DateTimeField()


class PromptImportInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSONL or CSV, in the line formats of the docs (docs/importing.md).")
    file_format = serializers.ChoiceField(
        choices=["jsonl", "csv"], required=False, help_text="Default: from the file name (.jsonl, .ndjson, .json, .csv)."
    )


class PromptImportOutputSerializer(serializers.Serializer):
    records = serializers.IntegerField()
    prompts_created = serializers.IntegerField()
    prompts_existing = serializers.IntegerField(help_text="Already in the project before this import.")
    duplicates_in_file = serializers.IntegerField()
    responses_created = serializers.IntegerField()
    responses_ignored = serializers.IntegerField(help_text="On prompts that already had ready-made responses.")
    tasks_created = serializers.IntegerField()
    prompts_without_task = serializers.IntegerField(help_text="Fewer than two distinct responses.")
    responses_merged = serializers.IntegerField(help_text="Identical responses of one prompt merged.")
