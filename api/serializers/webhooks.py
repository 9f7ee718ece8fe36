"""Serializers for webhooks. Types only: annotation.services.webhooks validates every field."""
import json

from rest_framework import serializers

from annotation.services.webhooks import EVENTS, webhook_secret_mask


class WebhookCreateInputSerializer(serializers.Serializer):
    """Documents the body; the service validates it (and refuses unknown fields) with the field named."""

    url = serializers.URLField(help_text="http or https; its host must resolve to public addresses only.")
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENTS), min_length=1)
    secret = serializers.CharField(required=False, min_length=16, max_length=200,
                                   help_text="Signs each request (X-Signature-256). Omit it to get one generated; "
                                             "it is shown in this answer only.")


class WebhookOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    secret = serializers.SerializerMethodField(help_text="Masked: the secret is shown only when the webhook is created.")
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    deliveries_url = serializers.SerializerMethodField()

    def get_secret(self, obj) -> str:
        return webhook_secret_mask(obj.secret)

    def get_deliveries_url(self, obj) -> str:
        return f"/api/v1/projects/{obj.project.slug}/webhooks/{obj.id}/deliveries/"


class WebhookCreatedOutputSerializer(WebhookOutputSerializer):
    """The answer to creation, the one time the secret is shown."""

    secret = serializers.CharField()


class WebhookDeliveryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Also sent as the X-Webhook-Delivery header: receivers deduplicate on it.")
    webhook = serializers.IntegerField(source="webhook_id")
    event = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.IntegerField()
    status = serializers.CharField(help_text="pending, delivered or failed.")
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True, help_text="HTTP status of the last attempt, if it got one.")
    last_error = serializers.CharField(help_text="Why the last attempt failed ('' after a success).")
    payload = serializers.SerializerMethodField(help_text="The JSON body sent.")
    created_at = serializers.DateTimeField()
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True, help_text="When a pending delivery tries again.")
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_payload(self, obj) -> dict:
        return json.loads(obj.body)
