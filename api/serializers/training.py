"""Serializers for training jobs. JSON types only: annotation.services.training validates the options fully."""
from rest_framework import serializers

from annotation.services.generation import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE
from annotation.services.training import KINDS, training_kind_help


class TrainingJobCreateInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=list(KINDS), help_text=training_kind_help())
    export = serializers.IntegerField(required=False, allow_null=True,
                                      help_text="Id of a succeeded export snapshot of this project in the kind's format "
                                                "(sft: sft; kto: unpaired; reward, dpo, orpo: pairs). rloo/grpo: omit "
                                                "it to train on the project's prompts.")
    base_model = serializers.CharField(required=False, allow_blank=True, default="",
                                       help_text="Hugging Face id or path; default: the project's generation model.")
    base_training_job = serializers.IntegerField(required=False, allow_null=True,
                                                 help_text="Start from this succeeded policy job's model (sft, dpo, kto, "
                                                           "orpo, rloo, grpo).")
    judge_training_job = serializers.IntegerField(required=False, allow_null=True,
                                                  help_text="dpo: a succeeded reward job judging the win rate vs base.")
    reward_job = serializers.IntegerField(required=False, allow_null=True,
                                          help_text="rloo/grpo (required): the succeeded reward job whose model is the reward.")
    test_fraction = serializers.FloatField(required=False, default=0.1, min_value=0.0, max_value=0.999,
                                           help_text="rloo/grpo: share of the project's prompts held out.")
    allow_no_test = serializers.BooleanField(required=False, default=False,
                                             help_text="Train even when nothing is held out (else 400).")
    options = serializers.DictField(required=False, default=dict,
                                    help_text="Fields of the kind's config in training.config: learning_rate, max_steps, "
                                              "per_device_batch_size, max_length, use_lora, loss_type, beta, seed, ...")


class TrainingJobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    kind = serializers.CharField()
    export = serializers.IntegerField(source="export_id", allow_null=True)
    reward_job = serializers.IntegerField(source="reward_job_id", allow_null=True)
    base_model = serializers.CharField()
    config = serializers.JSONField()
    status = serializers.CharField()
    steps_done = serializers.IntegerField()
    steps_total = serializers.IntegerField()
    output_dir = serializers.CharField(help_text="Relative to MEDIA_ROOT.")
    report = serializers.JSONField()
    artifacts = serializers.JSONField(help_text="List of {path (relative to MEDIA_ROOT), bytes}.")
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    page_url = serializers.SerializerMethodField()

    def get_page_url(self, obj) -> str:
        return f"/projects/{obj.project.slug}/training/{obj.id}/"


class TrainingMetricOutputSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    split = serializers.CharField(help_text="train, test or summary.")
    values = serializers.JSONField()
    created_at = serializers.DateTimeField()


class TrainingGenerateInputSerializer(serializers.Serializer):
    """JSON types only: a generation run's rules (GenerationOptions, batch_size up to MAX_BATCH_SIZE included)."""

    n = serializers.IntegerField(required=False, allow_null=True)
    temperature = serializers.FloatField(required=False, allow_null=True)
    top_p = serializers.FloatField(required=False, allow_null=True)
    max_new_tokens = serializers.IntegerField(required=False, allow_null=True)
    seed = serializers.IntegerField(required=False, allow_null=True)
    batch_size = serializers.IntegerField(required=False, default=DEFAULT_BATCH_SIZE,
                                          help_text=f"Prompts per task and per generate call, 1 to {MAX_BATCH_SIZE}.")


class GenerationRunStartedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    model_name = serializers.CharField()
    status = serializers.CharField()
    source_training_job = serializers.IntegerField(source="source_training_job_id")
    prompts_total = serializers.IntegerField()
