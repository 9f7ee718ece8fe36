"""Serializers for projects and memberships. JSON types only: the rules are in annotation.services.projects."""
from rest_framework import serializers

from annotation.models import Role
from annotation.services.access import can_see_generation_settings
from annotation.services.projects import MAX_NAME_CHARS
from annotation.services.rendering import markdown_to_safe_html


class ProjectCreateInputSerializer(serializers.Serializer):
    """JSON types only: the rules are ProjectOptions.problems(), checked by project_create (as for the command)."""

    name = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text=f"At most {MAX_NAME_CHARS} characters.")
    slug = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False,
                                 help_text="Lowercase letters, digits and hyphens; default: derived from the name.")
    instructions = serializers.CharField(required=False, allow_blank=True, help_text="Markdown shown to annotators.")
    responses_per_prompt = serializers.IntegerField(required=False, help_text="K >= 2 responses ranked per prompt.")
    overlap = serializers.IntegerField(required=False, help_text="Distinct annotators per task (>= 1); with adaptive overlap, the most.")
    min_overlap = serializers.IntegerField(
        required=False, allow_null=True,
        help_text="Adaptive overlap: rankings after which a task completes if they agree (1..overlap; default overlap: fixed).")
    agreement_target = serializers.FloatField(
        required=False, help_text="Adaptive overlap: the task agreement that completes a task at min_overlap (0..1).")
    adaptive_rule = serializers.CharField(
        required=False, help_text="Adaptive overlap: what completes a task early: agreement (its agreement reaches agreement_target, "
                                  "the default) or consensus (its consensus ranking has no tie).")
    consensus_weighting = serializers.CharField(
        required=False, help_text="What each annotator's rankings count in the consensus: none (default, one each) or "
                                  "reliability (the weight the agreement report estimates from agreement with the others).")
    allow_ties = serializers.BooleanField(required=False)
    gold_rate = serializers.FloatField(required=False, help_text="0 <= rate < 1.")
    lease_seconds = serializers.IntegerField(required=False)
    task_type = serializers.CharField(required=False, help_text="ranking (default) or demonstration.")
    review = serializers.BooleanField(required=False, help_text="Demonstration projects: another annotator reviews each one.")
    max_demonstration_chars = serializers.IntegerField(required=False, help_text="Longest demonstration accepted.")
    gen_model = serializers.CharField(required=False, allow_blank=True)
    gen_system_prompt = serializers.CharField(required=False, allow_blank=True)
    gen_temperature = serializers.FloatField(required=False)
    gen_top_p = serializers.FloatField(required=False)
    gen_max_new_tokens = serializers.IntegerField(required=False)
    gen_seed = serializers.IntegerField(required=False)
    judge_prompt_template = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                                  help_text="The judge prompt (docs/judge.md); blank: the default.")
    judge_routing = serializers.CharField(required=False, help_text="off | uncertain: people get uncertain tasks + an audit.")
    judge_confidence = serializers.FloatField(required=False, help_text="0.5..1: confidence a judge ranking needs.")
    judge_audit_rate = serializers.FloatField(required=False, help_text="0..1: share of confident tasks still served to people.")


GENERATION_FIELDS = ("gen_model", "gen_system_prompt", "gen_temperature", "gen_top_p", "gen_max_new_tokens", "gen_seed",
                     "judge_prompt_template", "judge_routing", "judge_confidence", "judge_audit_rate")
ENGINEERS_ONLY = "Engineers and admins only: absent for annotators, who rank blind."


class ProjectOutputSerializer(serializers.Serializer):
    """A project as its caller may see it: the generation settings only for engineers and admins.

    The caller's role comes from context["role"], else the row's `caller_role` (set by
    annotation.services.access); without either the generation settings are left out.
    """

    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    instructions = serializers.CharField()
    instructions_html = serializers.SerializerMethodField()
    responses_per_prompt = serializers.IntegerField()
    overlap = serializers.IntegerField()
    min_overlap = serializers.IntegerField(source="first_overlap", help_text="Equal to overlap: fixed overlap.")
    agreement_target = serializers.FloatField()
    adaptive_rule = serializers.CharField()
    consensus_weighting = serializers.CharField()
    priority_mode = serializers.CharField()
    priority_model = serializers.IntegerField(source="priority_model_id", allow_null=True)
    allow_ties = serializers.BooleanField()
    gold_rate = serializers.FloatField()
    lease_seconds = serializers.IntegerField()
    task_type = serializers.CharField()
    review = serializers.BooleanField()
    max_demonstration_chars = serializers.IntegerField()
    gen_model = serializers.CharField(required=False, help_text=ENGINEERS_ONLY)
    gen_system_prompt = serializers.CharField(required=False, help_text=ENGINEERS_ONLY)
    gen_temperature = serializers.FloatField(required=False, help_text=ENGINEERS_ONLY)
    gen_top_p = serializers.FloatField(required=False, help_text=ENGINEERS_ONLY)
    gen_max_new_tokens = serializers.IntegerField(required=False, help_text=ENGINEERS_ONLY)
    gen_seed = serializers.IntegerField(required=False, help_text=ENGINEERS_ONLY)
    judge_prompt_template = serializers.CharField(required=False, help_text=ENGINEERS_ONLY)
    judge_routing = serializers.CharField(required=False, help_text=ENGINEERS_ONLY)
    judge_confidence = serializers.FloatField(required=False, help_text=ENGINEERS_ONLY)
    judge_audit_rate = serializers.FloatField(required=False, help_text=ENGINEERS_ONLY)
    created_at = serializers.DateTimeField()

    def get_instructions_html(self, project) -> str:
        return markdown_to_safe_html(project.instructions)

    def to_representation(self, project):
        data = super().to_representation(project)
        role = self.context.get("role") or getattr(project, "caller_role", None)
        if not can_see_generation_settings(role=role):
            for field in GENERATION_FIELDS:
                data.pop(field, None)
        return data


class MemberAddInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberUpdateInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MemberOutputSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


class PriorityInputSerializer(serializers.Serializer):
    """JSON types only: the rules are annotation.services.priority.project_priority_set's."""

    priority = serializers.CharField(help_text="fifo (priority, then oldest) or uncertainty (smallest reward margin first).")
    priority_model = serializers.IntegerField(required=False, allow_null=True,
                                              help_text="uncertainty: a succeeded reward training job of this project.")


class PriorityOutputSerializer(serializers.Serializer):
    priority = serializers.CharField()
    priority_model = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(help_text="Scoring: '' (none), queued, running, succeeded, failed.")
    done = serializers.IntegerField(help_text="Open tasks scored so far.")
    total = serializers.IntegerField(help_text="Open tasks to score.")
    error = serializers.CharField()
