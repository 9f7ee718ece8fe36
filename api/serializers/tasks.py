"""Serializers of the next-task, submit, skip, heartbeat and gold endpoints.

Input serializers check JSON types only (400 naming the field); every rule of a submission (ids
shown, ties, flags, ranges, lengths) is annotation.services.ranking.ranking_validate's.
"""
from rest_framework import serializers

from annotation.models import ResponseFlag
from annotation.services.ranking import MAX_DURATION_SECONDS, MAX_RATIONALE
from api.fields import IdField


class MessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField(allow_blank=True)
    content_html = serializers.CharField(allow_blank=True, help_text="content as sanitised HTML (Markdown rendered on the server).")


class ShownResponseSerializer(serializers.Serializer):
    id = serializers.CharField(help_text='Opaque id for this assignment only, e.g. "r7".')
    label = serializers.CharField(help_text="A, B, C... in display order.")
    content = serializers.CharField(allow_blank=True)
    content_html = serializers.CharField(allow_blank=True, help_text="content as sanitised HTML (Markdown rendered on the server).")


class ProgressSerializer(serializers.Serializer):
    done_today = serializers.IntegerField()
    done_total = serializers.IntegerField()
    left_in_project = serializers.IntegerField(help_text="Open tasks in the project (refreshed every few seconds).")


class NextTaskQuerySerializer(serializers.Serializer):
    after = IdField(required=False, help_text="Prefetch: the assignment after this one (the caller's other live lease, or a new one).")


class DraftSerializer(serializers.Serializer):
    content = serializers.CharField(allow_blank=True)
    content_html = serializers.CharField(allow_blank=True)


class NextTaskOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The assignment id.")
    type = serializers.CharField(help_text="ranking: rank `responses`; demonstration: write the ideal response (from `draft` if any).")
    project = serializers.IntegerField()
    messages = MessageSerializer(many=True)
    responses = ShownResponseSerializer(many=True)
    lease_expires_at = serializers.DateTimeField()
    allow_ties = serializers.BooleanField()
    flags = serializers.ListField(child=serializers.CharField())
    draft = DraftSerializer(required=False, allow_null=True, help_text="Demonstration tasks: the response to edit, or null.")
    max_chars = serializers.IntegerField(required=False, help_text="Demonstration tasks: the longest text accepted.")
    progress = ProgressSerializer()


class SubmitInputSerializer(serializers.Serializer):
    """JSON types only. What makes a submission valid for its assignment (the ids shown, ties, flags,
    ranges, lengths) is annotation.services.ranking.ranking_validate, the one place of those rules."""

    ranking = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text='Tiers of the opaque ids shown, best first: [["r7"], ["r2", "r9"]] means r7 > r2 = r9; '
                  "every shown response exactly once.",
    )
    flags = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Opaque id -> flags from: " + ", ".join(ResponseFlag.values),
    )
    all_bad = serializers.BooleanField(required=False, default=False, help_text="Every response is bad.")
    rating = serializers.IntegerField(required=False, allow_null=True, help_text="1 to 7, or null.")
    rationale = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False,
                                      help_text=f"At most {MAX_RATIONALE} characters.")
    duration_seconds = serializers.FloatField(required=False, allow_null=True,
                                              help_text=f"0 to {MAX_DURATION_SECONDS} seconds, or null (then: since the lease).")


class DemonstrationSubmitInputSerializer(serializers.Serializer):
    """A demonstration task's submission, JSON types only (the rules: demonstrations.demonstration_validate)."""

    text = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text="The ideal response (Markdown).")
    duration_ms = serializers.IntegerField(required=False, allow_null=True, help_text="Time spent writing, in milliseconds.")


class DemonstrationSubmitOutputSerializer(serializers.Serializer):
    assignment = serializers.IntegerField()
    demonstration_id = serializers.IntegerField()
    status = serializers.CharField()
    review_status = serializers.CharField()
    submitted_at = serializers.DateTimeField()
    late = serializers.BooleanField()
    replayed = serializers.BooleanField()


class PreviewInputSerializer(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, trim_whitespace=False)


class PreviewOutputSerializer(serializers.Serializer):
    html = serializers.CharField(help_text="The text's Markdown as sanitised HTML.")


class ReviewNextOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The demonstration id.")
    project = serializers.IntegerField()
    messages = MessageSerializer(many=True)
    text = serializers.CharField()
    text_html = serializers.CharField()
    review_lease_expires_at = serializers.DateTimeField()


class ReviewInputSerializer(serializers.Serializer):
    accepted = serializers.BooleanField()
    note = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)


class ReviewOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    review_status = serializers.CharField()
    reviewed_at = serializers.DateTimeField()


class SubmitQuerySerializer(serializers.Serializer):
    next = serializers.BooleanField(required=False, default=False,
                                    help_text="true: the answer also carries the next assignment (one request per ranking).")
    after = IdField(required=False, help_text="With next=true: prefetch, as next-task?after= (the caller's other live lease, "
                                              "or a new one).")


class SubmitOutputSerializer(serializers.Serializer):
    assignment = serializers.IntegerField()
    ranking_id = serializers.IntegerField()
    status = serializers.CharField()
    submitted_at = serializers.DateTimeField()
    late = serializers.BooleanField(help_text="Accepted after the lease ran out (the slot was still free).")
    replayed = serializers.BooleanField(help_text="A retry with the first submission's Idempotency-Key.")


class NoTaskSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="all_done or nothing_for_you (next-task's X-No-Task-Reason), or no_access: "
                                             "no longer a member of the project (the ranking was stored).")
    message = serializers.CharField(help_text="next-task's X-No-Task-Message.")


class SubmitNextOutputSerializer(SubmitOutputSerializer):
    next = NextTaskOutputSerializer(required=False, allow_null=True,
                                    help_text="Only with ?next=true: what next-task answers now (null: see next_empty).")
    next_empty = NoTaskSerializer(required=False, allow_null=True,
                                  help_text="Only with ?next=true: why there is no next assignment (null when there is one).")


class SkipInputSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class AssignmentStateOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    lease_expires_at = serializers.DateTimeField()


class GoldInputSerializer(serializers.Serializer):
    gold_ranking = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), allow_empty=False),
        allow_null=True,
        help_text="Tiers of the task's response ids, best first; null unmarks the task.",
    )


class GoldOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    is_gold = serializers.BooleanField()
    gold_ranking = serializers.JSONField(allow_null=True)
