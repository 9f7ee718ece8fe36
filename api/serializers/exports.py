"""Serializers for exports. The body of a create is the export options, validated in one place:
annotation.services.export.options.ExportOptionsSerializer (the command's flags come from it too)."""
from rest_framework import serializers

from annotation.services.export.options import ExportOptionsSerializer

ExportCreateInputSerializer = ExportOptionsSerializer  # the services validate the body with it


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
    warnings = serializers.ListField(
        child=serializers.CharField(), read_only=True,
        help_text="What must not be missed about a finished export: it is empty, or its test split is (from the manifest).",
    )
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    download_url = serializers.SerializerMethodField()

    def get_download_url(self, obj) -> str:
        return f"/api/v1/exports/{obj.id}/download"
