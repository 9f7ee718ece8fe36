"""Serializers for the agreement report."""
from rest_framework import serializers

from annotation.services.ranking_filter import RankingFilterSerializer


class AgreementQuerySerializer(RankingFilterSerializer):
    """The ranking filter (since, until, annotators: the same as exports'), and refresh."""

    refresh = serializers.BooleanField(required=False, default=False, help_text="Recompute now instead of reading the cache.")


class PositionBiasRowSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    shown = serializers.IntegerField()
    first = serializers.FloatField()
    rate = serializers.FloatField(allow_null=True)
    expected = serializers.FloatField(allow_null=True)


class PositionBiasSerializer(serializers.Serializer):
    rankings = serializers.IntegerField()
    positions = PositionBiasRowSerializer(many=True)
    chi2 = serializers.FloatField(allow_null=True)
    dof = serializers.IntegerField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    significant = serializers.BooleanField()


class AnnotatorStatsSerializer(serializers.Serializer):
    username = serializers.CharField()
    user_id = serializers.IntegerField()
    tasks = serializers.IntegerField()
    agreement = serializers.FloatField(allow_null=True, help_text="Mean tau-b with the leave-one-out consensus.")
    agreement_tasks = serializers.IntegerField()
    gold_score = serializers.FloatField(allow_null=True, help_text="Mean tau-b against gold rankings.")
    gold_tasks = serializers.IntegerField()
    median_seconds = serializers.FloatField(allow_null=True)
    skips = serializers.IntegerField()
    skip_share = serializers.FloatField(allow_null=True)
    flagged = serializers.BooleanField()
    former_member = serializers.BooleanField(required=False, help_text="No longer a member of the project (their rankings stay).")
    agreement_ci = serializers.ListField(child=serializers.FloatField(), allow_null=True, required=False,
                                         help_text="95% t-interval of the mean agreement over the annotator's shared tasks.")
    gold_ci = serializers.ListField(child=serializers.FloatField(), allow_null=True, required=False,
                                    help_text="95% t-interval of the mean gold score.")
    flag_reasons = serializers.ListField(child=serializers.CharField(), required=False, help_text="Which parts of flag_rule hold.")
    best_partner = serializers.DictField(allow_null=True, required=False,
                                         help_text="The partner agreed with most surely: username, tasks, tau_b, ci (95%).")
    too_fast = serializers.BooleanField(required=False, help_text="See fast_rule.")
    others_median_seconds = serializers.FloatField(allow_null=True, required=False)
    skill = serializers.FloatField(allow_null=True, required=False,
                                   help_text="2p - 1, p the estimated chance of ordering a pair right (weight_rule); "
                                             "null under its minimum of compared pairs.")
    weight = serializers.FloatField(allow_null=True, required=False,
                                    help_text="What a ranking counts in a reliability-weighted consensus: log(p / (1 - p)).")
    skill_pairs = serializers.IntegerField(required=False, help_text="Response pairs compared strictly with other annotators.")


class AgreementHistogramSerializer(serializers.Serializer):
    edges = serializers.ListField(child=serializers.FloatField())
    counts = serializers.ListField(child=serializers.IntegerField())


class AgreementCacheSerializer(serializers.Serializer):
    source = serializers.ChoiceField(choices=["cache", "computed", "pending"],
                                     help_text="pending: no report yet, the first refresh is queued (an empty report meanwhile).")
    stale = serializers.BooleanField()
    computed_at = serializers.CharField(allow_null=True)
    age_seconds = serializers.IntegerField(allow_null=True, required=False, help_text="How old the report is.")
    refresh_in_progress = serializers.BooleanField(required=False, help_text="A refresh is queued or running.")
    refresh_seconds = serializers.FloatField()


class AgreementReportSerializer(serializers.Serializer):
    project = serializers.CharField()
    computed_at = serializers.CharField(allow_null=True, help_text="null while the first report is pending.")
    filters = serializers.DictField()
    rankings = serializers.IntegerField()
    tasks = serializers.IntegerField()
    tasks_with_overlap = serializers.IntegerField()
    alpha = serializers.FloatField(allow_null=True, help_text="Krippendorff's alpha, ordinal, over (task, response) units.")
    alpha_ci = serializers.ListField(child=serializers.FloatField(allow_null=True), allow_null=True, help_text="95% bootstrap CI.")
    bootstrap_samples = serializers.IntegerField()
    kendall_w_mean = serializers.FloatField(allow_null=True)
    kendall_w_median = serializers.FloatField(allow_null=True)
    kendall_w_tasks = serializers.IntegerField()
    kendall_w_histogram = AgreementHistogramSerializer()
    tau_b_mean = serializers.FloatField(allow_null=True)
    annotator_pairs = serializers.IntegerField()
    pairwise_agreement = serializers.FloatField(allow_null=True)
    pairwise_comparisons = serializers.IntegerField()
    position_bias = PositionBiasSerializer()
    annotators = AnnotatorStatsSerializer(many=True)
    flag_rule = serializers.CharField()
    fast_rule = serializers.CharField(required=False)
    weight_rule = serializers.CharField(required=False)
    flag_median = serializers.FloatField(allow_null=True)
    flag_threshold = serializers.FloatField(allow_null=True)
    judge = serializers.JSONField(allow_null=True, required=False,
                                  help_text="The latest judge run against people (docs/judge.md); null without one.")
    cache = AgreementCacheSerializer(required=False)
