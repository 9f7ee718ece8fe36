"""The domain schema. Rules live in annotation.services; models hold fields and constraints only."""
from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    ENGINEER = "engineer", "Engineer"
    ADMIN = "admin", "Admin"


# Higher rank includes the rights of the lower ones.
ROLE_RANK = {Role.ANNOTATOR: 1, Role.ENGINEER: 2, Role.ADMIN: 3}


class TaskType(models.TextChoices):
    """What an annotator does with a task: rank its responses, or write the ideal response (SFT data)."""

    RANKING = "ranking", "Ranking"
    DEMONSTRATION = "demonstration", "Demonstration"


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    instructions = models.TextField(blank=True, default="", help_text="Markdown shown to annotators.")
    responses_per_prompt = models.PositiveIntegerField(default=4, validators=[MinValueValidator(2)])
    overlap = models.PositiveIntegerField(default=3, validators=[MinValueValidator(1)])
    # Adaptive overlap (docs/ranking.md): a task completes after `min_overlap` rankings whose agreement
    # reaches `agreement_target`, else one more annotator at a time up to `overlap`. NULL (or equal
    # to overlap): fixed overlap.
    min_overlap = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    agreement_target = models.FloatField(default=0.8)
    # What "they agree" means for adaptive overlap (annotation.services.task_agreement.adaptive_decided):
    # "agreement", the task's pairwise agreement reaches agreement_target; "consensus", the task's
    # consensus (Borda tiers) orders every response strictly, so no pair of it is a tie.
    adaptive_rule = models.CharField(max_length=16, default="agreement")
    # What each annotator's rankings count in the people's consensus (exports, the judge comparison, the
    # task page): "none", one each; "reliability", the weight the last agreement report estimated from
    # how often they agree with the others (annotation.services.reliability).
    consensus_weighting = models.CharField(max_length=16, default="none")
    # Serving order: "fifo" (priority, then oldest) or "uncertainty" (the reward model's smallest
    # margin first, scored by a Celery task into RankingTask.priority; annotation.services.priority).
    priority_mode = models.CharField(max_length=16, default="fifo")
    priority_model = models.ForeignKey("TrainingJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    priority_status = models.CharField(max_length=16, blank=True, default="")
    priority_done = models.PositiveIntegerField(default=0)
    priority_total = models.PositiveIntegerField(default=0)
    priority_error = models.TextField(blank=True, default="")
    allow_ties = models.BooleanField(default=False)
    gold_rate = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(0.999)])
    lease_seconds = models.PositiveIntegerField(default=900, validators=[MinValueValidator(30)])
    task_type = models.CharField(max_length=16, choices=TaskType.choices, default=TaskType.RANKING)
    # Demonstration projects: another annotator accepts or rejects each one; only accepted ones export.
    review = models.BooleanField(default=False)
    max_demonstration_chars = models.PositiveIntegerField(default=20_000)
    # Default generation settings; GENERATION_MODEL applies when gen_model is blank.
    gen_model = models.CharField(max_length=500, blank=True, default="")
    gen_system_prompt = models.TextField(blank=True, default="")
    gen_temperature = models.FloatField(default=0.8)
    gen_top_p = models.FloatField(default=0.95)
    gen_max_new_tokens = models.PositiveIntegerField(default=256)
    gen_seed = models.IntegerField(default=0)
    # AI feedback (docs/judge.md): the judge prompt's override (blank: the documented default) and routing.
    judge_prompt_template = models.TextField(blank=True, default="")
    judge_routing = models.CharField(max_length=16, default="off")  # off | uncertain
    judge_confidence = models.FloatField(default=0.8)
    judge_audit_rate = models.FloatField(default=0.1)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(responses_per_prompt__gte=2), name="project_k_at_least_2"),
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_at_least_1"),
            models.CheckConstraint(
                condition=Q(min_overlap__isnull=True) | (Q(min_overlap__gte=1) & Q(min_overlap__lte=models.F("overlap"))),
                name="project_min_overlap_range"),
            models.CheckConstraint(condition=Q(agreement_target__gte=0) & Q(agreement_target__lte=1),
                                   name="project_agreement_target_range"),
            models.CheckConstraint(condition=Q(adaptive_rule__in=["agreement", "consensus"]), name="project_adaptive_rule_known"),
            models.CheckConstraint(condition=Q(consensus_weighting__in=["none", "reliability"]),
                                   name="project_consensus_weighting_known"),
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lt=1), name="project_gold_rate_range"),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def first_overlap(self) -> int:
        """The rankings a task gets before its agreement is judged: min_overlap, or the overlap when fixed."""
        return self.overlap if self.min_overlap is None else self.min_overlap

    @property
    def is_adaptive(self) -> bool:
        return self.first_overlap < self.overlap


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="membership_unique_user_project")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} as {self.role}"


class Prompt(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    external_id = models.CharField(max_length=200, blank=True, default="")
    messages = models.JSONField(help_text="Chat messages: a list of {role, content}.")
    metadata = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "content_hash"], name="prompt_unique_content_per_project")
        ]
        indexes = [models.Index(fields=["project", "external_id"], name="prompt_project_extid")]

    def __str__(self) -> str:
        return f"prompt {self.pk} ({self.external_id})"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partial"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class GenerationRun(models.Model):
    class Backend(models.TextChoices):
        TRANSFORMERS = "transformers", "transformers"
        OPENAI = "openai", "OpenAI-compatible HTTP"
        IMPORT = "import", "Imported responses"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="generation_runs")
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.TRANSFORMERS)
    model_name = models.CharField(max_length=500, blank=True, default="")
    model_revision = models.CharField(max_length=200, blank=True, default="", help_text="Revision or hash of local weights.")
    source_training_job = models.ForeignKey(
        "TrainingJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_runs"
    )
    n = models.PositiveIntegerField(default=4)
    temperature = models.FloatField(default=0.8)
    top_p = models.FloatField(default=0.95)
    max_new_tokens = models.PositiveIntegerField(default=256)
    seed = models.IntegerField(default=0)
    system_prompt = models.TextField(blank=True, default="")
    batch_size = models.PositiveIntegerField(default=8)
    params = models.JSONField(default=dict, blank=True, help_text="Any further backend parameters.")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    prompts_total = models.PositiveIntegerField(default=0)
    prompts_done = models.PositiveIntegerField(default=0)
    prompts_failed = models.PositiveIntegerField(default=0)
    responses_count = models.PositiveIntegerField(default=0)
    tokens_count = models.PositiveBigIntegerField(default=0)
    generation_seconds = models.FloatField(default=0.0)
    tasks_created = models.PositiveIntegerField(default=0)
    prompts_without_task = models.PositiveIntegerField(default=0)
    duplicates_merged = models.PositiveIntegerField(default=0)
    batches_total = models.PositiveIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    summary = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.backend}, {self.status})"


class Response(models.Model):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="responses")
    run = models.ForeignKey(GenerationRun, null=True, blank=True, on_delete=models.CASCADE, related_name="responses")
    sample_index = models.PositiveIntegerField(default=0)
    text = models.TextField()
    text_hash = models.CharField(max_length=64, blank=True, default="")
    finish_reason = models.CharField(max_length=16, blank=True, default="")
    token_count = models.PositiveIntegerField(null=True, blank=True)
    model_name = models.CharField(max_length=500, blank=True, default="")
    prompt_truncated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Two partial constraints rather than nulls_distinct=False, which SQLite cannot enforce:
            # generated responses are unique per (prompt, run, sample), imported ones per (prompt, sample).
            models.UniqueConstraint(
                fields=["prompt", "run", "sample_index"], condition=Q(run__isnull=False), name="response_unique_run_sample"
            ),
            models.UniqueConstraint(
                fields=["prompt", "sample_index"], condition=Q(run__isnull=True), name="response_unique_imported_sample"
            ),
        ]

    def __str__(self) -> str:
        return f"response {self.pk} of prompt {self.prompt_id}"


class ResponseSearchVector(models.Model):
    """A response's full-text vector (PostgreSQL), written by the response table's trigger or, for a
    deferred bulk import, by the fill (annotation.sql.curation). Never written through the ORM; a model
    so that deleting a response deletes its vector and a test database's flush empties the table."""

    response = models.OneToOneField(Response, primary_key=True, on_delete=models.CASCADE, related_name="+")
    vector = SearchVectorField()

    class Meta:
        db_table = "annotation_response_search"


class ResponseSearchPending(models.Model):
    """A response whose vector a deferred import left to the fill. No foreign key, so queueing costs
    the import no per-row check; the fill drops the id of a response deleted meanwhile."""

    response_id = models.BigIntegerField(primary_key=True)

    class Meta:
        db_table = "annotation_response_search_pending"


class RenderedHtml(models.Model):
    """Markdown as safe HTML (services/rendering.py), rendered ahead of time by the prerender fill
    (services/prerender.py) so that the next-task path reads it instead of rendering.

    `renderer`: rendering.RENDERER_VERSION at the time; rows of another version are ignored and
    rendered again. No database constraint on the row rendered (like ResponseSearchPending): a fill
    racing a deletion can then never make the deletion fail; the ORM still deletes the HTML with
    its row, and readers only ever reach it through that row."""

    renderer = models.PositiveSmallIntegerField()

    class Meta:
        abstract = True


class ResponseHtml(RenderedHtml):
    """A response's text as HTML."""

    response = models.OneToOneField(Response, primary_key=True, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    html = models.TextField()

    class Meta:
        db_table = "annotation_response_html"


class PromptHtml(RenderedHtml):
    """A prompt's messages as HTML, one string per message in order."""

    prompt = models.OneToOneField(Prompt, primary_key=True, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    turns = models.JSONField()

    class Meta:
        db_table = "annotation_prompt_html"


class RankingTask(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="tasks")
    responses = models.ManyToManyField(Response, related_name="tasks")
    overlap = models.PositiveIntegerField(default=3)  # the most rankings it may get (the project's N)
    # The rankings it may get at this moment: starts at the project's min_overlap, raised by one by a
    # submission that leaves its rankings below the agreement target, never above `overlap`.
    # NULL means `overlap` (fixed overlap; rows written without it, such as bulk seeds).
    target_overlap = models.PositiveIntegerField(null=True, blank=True)
    # The reward model's smallest margin between adjacent responses (uncertainty priority); NULL: unscored.
    priority_margin = models.FloatField(null=True, blank=True)
    is_gold = models.BooleanField(default=False)
    gold_ranking = models.JSONField(null=True, blank=True, help_text="Tiers of response ids, best first.")
    priority = models.IntegerField(default=0)
    # Counters kept by the assignment service in the same transaction as the assignment rows.
    submitted_count = models.PositiveIntegerField(default=0)
    active_count = models.PositiveIntegerField(default=0, help_text="Submitted plus live leases.")
    is_complete = models.BooleanField(default=False)
    # Pairwise agreement of the task's rankings (consensus.task_agreement), recomputed in each
    # submission's transaction (services/task_agreement.py); NULL below two rankings.
    agreement = models.FloatField(null=True, blank=True)
    # Left out of every export (curation: services/task_browse.py); the manifest counts them.
    excluded = models.BooleanField(default=False)
    # A demonstration task's responses are at most one draft to edit; an evaluation's task pairs two runs.
    task_type = models.CharField(max_length=16, choices=TaskType.choices, default=TaskType.RANKING)
    evaluation = models.ForeignKey("Evaluation", null=True, blank=True, on_delete=models.CASCADE, related_name="tasks")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["project", "-priority", "id"],
                name="task_open_queue",
                condition=Q(is_complete=False),
            ),
            models.Index(fields=["project", "agreement"], name="task_by_agreement"),
            # The task browser's other two orderings (newest first, highest priority first).
            models.Index(fields=["project", "created_at", "id"], name="task_by_created"),
            models.Index(fields=["project", "priority", "id"], name="task_by_priority"),
        ]

    def __str__(self) -> str:
        return f"task {self.pk}"


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class ResponseFlag(models.TextChoices):
    """What an annotator may flag on a response (`all_bad` flags the whole task's responses)."""

    HARMFUL = "harmful", "Harmful"
    FACTUALLY_WRONG = "factually_wrong", "Factually wrong"
    REFUSAL = "refusal", "Refusal"
    OFF_TOPIC = "off_topic", "Off-topic"
    ALL_BAD = "all_bad", "All bad"


class Assignment(models.Model):
    task = models.ForeignKey(RankingTask, on_delete=models.CASCADE, related_name="assignments")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED)
    display_order = models.JSONField(default=list, help_text="Response ids in the order shown.")
    opaque_ids = models.JSONField(default=dict, help_text="Opaque id shown -> response id.")
    leased_at = models.DateTimeField(auto_now_add=True)
    lease_expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "annotator"], name="assignment_unique_task_annotator")]
        indexes = [
            models.Index(fields=["project", "annotator", "status"], name="assignment_by_annotator"),
            models.Index(fields=["status", "lease_expires_at"], name="assignment_lease_expiry"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.status})"


class Ranking(models.Model):
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="ranking")
    # Denormalised from the assignment so agreement and export read one table.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rankings")
    task = models.ForeignKey(RankingTask, on_delete=models.CASCADE, related_name="rankings")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rankings")
    tiers = models.JSONField(help_text="Tiers of response ids, best first: [[3], [1, 2]] means 3 > 1 = 2.")
    flags = models.JSONField(default=dict, blank=True, help_text="Response id -> list of flags.")
    rating = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(7)]
    )
    rationale = models.TextField(blank=True, default="")
    duration_seconds = models.FloatField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # What agreement needs, written at submit time in a form that loads in bulk (no JSON decoding):
    # per response of the task, in ascending response id order, its rank (float32, little-endian,
    # ties averaged) and the 0-based position it was shown at (int16). NULL on rows written before
    # (agreement then decodes `tiers`). annotation.services.ranking_stats.
    rank_vector = models.BinaryField(null=True, blank=True, editable=False)
    display_vector = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [models.Index(fields=["project", "task"], name="ranking_project_task")]

    def __str__(self) -> str:
        return f"ranking {self.pk} of task {self.task_id}"


class ReviewStatus(models.TextChoices):
    NOT_REQUIRED = "not_required", "Not required"  # the project does not review: exported as written
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class Demonstration(models.Model):
    """The ideal response an annotator wrote (or edited from the task's draft) for a demonstration task."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="demonstration")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="demonstrations")
    task = models.ForeignKey(RankingTask, on_delete=models.CASCADE, related_name="demonstrations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="demonstrations")
    draft = models.ForeignKey(Response, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField()
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    review_status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.NOT_REQUIRED)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    review_note = models.TextField(blank=True, default="")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # A reviewer's claim on a pending demonstration, so two reviewers are not shown the same one.
    review_leased_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    review_lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "review_status"], name="demonstration_review_queue")]
        constraints = [
            # The author never reviews their own demonstration.
            models.CheckConstraint(condition=~Q(reviewer=models.F("annotator")), name="demonstration_reviewer_not_author"),
        ]

    def __str__(self) -> str:
        return f"demonstration {self.pk} of task {self.task_id}"


class Evaluation(models.Model):
    """Head to head: blinded pairwise tasks, one response of run A and one of run B per prompt."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="evaluations")
    run_a = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="+")
    run_b = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="+")
    tasks_created = models.PositiveIntegerField(default=0)
    prompts_skipped = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"evaluation {self.pk} (run {self.run_a_id} vs run {self.run_b_id})"


class EvaluationItem(models.Model):
    """Which of an evaluation task's two responses is run A's and which run B's (both may be one run's)."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="items")
    task = models.OneToOneField(RankingTask, on_delete=models.CASCADE, related_name="evaluation_item")
    response_a = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    response_b = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["id"]


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ExportSnapshot(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=16)  # pairs | unpaired | rankings
    file_format = models.CharField(max_length=16, default="jsonl")  # jsonl | parquet
    options = models.JSONField(default=dict, blank=True, help_text="Filters, pair policy, split fraction, seed.")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    rows_done = models.PositiveBigIntegerField(default=0)
    rows_total = models.PositiveBigIntegerField(default=0)
    directory = models.CharField(max_length=1000, blank=True, default="", help_text="Relative to MEDIA_ROOT.")
    files = models.JSONField(default=dict, blank=True, help_text="File name -> {rows, bytes, sha256}.")
    manifest = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.format}, {self.status})"

    @property
    def warnings(self) -> list[str]:
        """The finished export's warnings (empty export, empty test split), from its manifest."""
        return list((self.manifest or {}).get("warnings", []))


class TrainingJob(models.Model):
    class Kind(models.TextChoices):
        SFT = "sft", "SFT"
        REWARD = "reward", "Reward model"
        DPO = "dpo", "DPO"
        KTO = "kto", "KTO"
        ORPO = "orpo", "ORPO"
        RLOO = "rloo", "RLOO (RL step)"
        GRPO = "grpo", "GRPO (RL step)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_jobs")
    # rloo / grpo: the succeeded reward job of the project whose model is the reward.
    reward_job = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="policy_jobs")
    export = models.ForeignKey(ExportSnapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_jobs")
    data_path = models.CharField(max_length=1000, blank=True, default="")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    base_model = models.CharField(max_length=500, blank=True, default="")
    config = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    steps_done = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)
    output_dir = models.CharField(max_length=1000, blank=True, default="")
    report = models.JSONField(default=dict, blank=True)
    artifacts = models.JSONField(default=list, blank=True, help_text="List of {path, bytes}.")
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Written every few seconds by the worker running the job; a stale one means the worker died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"training job {self.pk} ({self.kind}, {self.status})"


class TrainingMetric(models.Model):
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    split = models.CharField(max_length=16, default="train")
    values = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "step", "id"]


class AgreementReport(models.Model):
    """Cached agreement statistics of a project, refreshed by a debounced Celery task."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="agreement_report")
    result = models.JSONField(default=dict)
    rankings_seen = models.PositiveBigIntegerField(default=0)
    computed_at = models.DateTimeField(null=True, blank=True)
    stale = models.BooleanField(default=True)
    # Debounce guard: set when a refresh task is enqueued, cleared when it starts (conditional update).
    refresh_queued_at = models.DateTimeField(null=True, blank=True)


class Constitution(models.Model):
    """A project's written principles, versioned: a new version never changes labels made under an older one."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="constitutions")
    version = models.PositiveIntegerField()
    text = models.TextField(help_text="Markdown; each top-level list item is one principle.")
    principles = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-version"]
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="constitution_unique_version")]

    def __str__(self) -> str:
        return f"constitution v{self.version} of {self.project_id}"


class JudgeRun(models.Model):
    """A model ranking a project's tasks under one constitution version (AI feedback)."""

    class Backend(models.TextChoices):
        TRANSFORMERS = "transformers", "transformers"
        OPENAI = "openai", "OpenAI-compatible HTTP"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judge_runs")
    constitution = models.ForeignKey(Constitution, on_delete=models.PROTECT, related_name="judge_runs")
    backend = models.CharField(max_length=16, choices=Backend.choices)
    model_name = models.CharField(max_length=500)
    model_revision = models.CharField(max_length=200, blank=True, default="")
    pairs = models.CharField(max_length=16, default="all")  # all | adjacent
    task_limit = models.PositiveIntegerField(null=True, blank=True)
    seed = models.IntegerField(default=0)
    batch_size = models.PositiveIntegerField(default=8, help_text="Tasks per Celery task.")
    system_prompt = models.TextField(help_text="The judge's system message as used.")
    prompt_template = models.TextField(help_text="The judge prompt template as used.")
    params = models.JSONField(default=dict, blank=True, help_text="openai: base_url, api_key_env.")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    tasks_total = models.PositiveIntegerField(default=0)
    tasks_done = models.PositiveIntegerField(default=0)
    tasks_failed = models.PositiveIntegerField(default=0)
    comparisons_total = models.PositiveIntegerField(default=0)
    comparisons_done = models.PositiveIntegerField(default=0)
    comparisons_failed = models.PositiveIntegerField(default=0)
    batches_total = models.PositiveIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    judge_seconds = models.FloatField(default=0.0)
    error = models.TextField(blank=True, default="")
    summary = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"judge run {self.pk} ({self.backend}, {self.status})"


class JudgeComparison(models.Model):
    """One pair of a task's responses judged under one principle, asked in both orders.

    response_a is the pair's lower id. p_first: P(response_a preferred) when shown first (as "A");
    p_second: P(response_a preferred) when shown second (as "B"); prob_a their mean.
    """

    run = models.ForeignKey(JudgeRun, on_delete=models.CASCADE, related_name="comparisons")
    task = models.ForeignKey(RankingTask, on_delete=models.CASCADE, related_name="judge_comparisons")
    response_a = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    response_b = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    principle = models.TextField()
    principle_index = models.PositiveIntegerField(default=0)
    p_first = models.FloatField(null=True, blank=True)
    p_second = models.FloatField(null=True, blank=True)
    prob_a = models.FloatField(null=True, blank=True)
    orders_agree = models.BooleanField(null=True, blank=True)
    hard_label = models.BooleanField(default=False, help_text="The server gave a letter but no probabilities.")
    failed = models.BooleanField(default=False)
    failed_text = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "task", "response_a", "response_b"], name="judge_comparison_once"),
        ]


class JudgeRanking(models.Model):
    """The judge's ranking of a task (source "judge"): kept apart from Ranking, so it never counts
    toward the human overlap, never appears among the annotators and is never shown to them."""

    SOURCE = "judge"

    run = models.ForeignKey(JudgeRun, on_delete=models.CASCADE, related_name="rankings")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judge_rankings")
    task = models.ForeignKey(RankingTask, on_delete=models.CASCADE, related_name="judge_rankings")
    tiers = models.JSONField(help_text="Tiers of response ids, best first; a tie where the judge is not confident.")
    strengths = models.JSONField(default=dict, help_text="Response id -> Bradley-Terry log-strength.")
    confident = models.BooleanField(
        default=False, help_text="Every adjacent pair decided with p >= the project's judge_confidence, both orders agreeing."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "task"], name="judge_ranking_once")]
        indexes = [models.Index(fields=["project", "task"], name="judge_ranking_project_task")]


class WebhookEvent(models.TextChoices):
    """What a webhook can subscribe to (docs/webhooks.md says when each is sent)."""

    TASK_COMPLETED = "task.completed", "A ranking task reached its required rankings"
    EXPORT_SUCCEEDED = "export.succeeded", "An export finished writing its files"
    EXPORT_FAILED = "export.failed", "An export failed"
    TRAINING_JOB_SUCCEEDED = "training_job.succeeded", "A training job succeeded"
    TRAINING_JOB_FAILED = "training_job.failed", "A training job failed"
    GENERATION_RUN_FINISHED = "generation_run.finished", "A generation run ended (any final status)"
    JUDGE_RUN_FINISHED = "judge_run.finished", "A judge run ended (any final status)"


class Webhook(models.Model):
    """An HTTP endpoint told about a project's events, each POST signed with `secret` (HMAC-SHA256)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=2000)
    events = models.JSONField(default=list, help_text="WebhookEvent values this endpoint receives.")
    # Kept as given: signing needs the secret itself (a hash would not do). The API never shows it again.
    secret = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} -> {self.url}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for its first or next attempt
    DELIVERED = "delivered", "Delivered"  # the endpoint answered 2xx
    FAILED = "failed", "Failed"  # every attempt failed


class WebhookDelivery(models.Model):
    """One event for one webhook: the exact body sent (so every retry is signed the same) and how it went."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)  # a WebhookEvent value (no choices: a new event needs no migration)
    object_type = models.CharField(max_length=40)
    object_id = models.BigIntegerField()
    body = models.TextField(help_text="The JSON body, byte for byte as signed and sent.")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    # While pending: when the next attempt may start (during an attempt, the end of its lease).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # An event reaches each webhook once, however many times (or concurrently) it is emitted.
            models.UniqueConstraint(fields=["webhook", "event", "object_id"], name="webhook_delivery_once"),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due",
                         condition=Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} of {self.event} {self.object_id} ({self.status})"


class WorkHeartbeat(models.Model):
    """A long-running Celery task in progress (a generation batch, an export, a training job).

    Its worker beats `beat_at` every few seconds while the task runs and deletes the row when the
    task ends however it ends, except by the worker dying (SIGKILL, power loss). The reaper
    (annotation.services.work.work_reap) re-sends the task of a row whose beat stopped, so the work
    resumes on a free worker within a minute or two instead of the broker's visibility timeout.
    """

    key = models.CharField(max_length=200, unique=True)  # the task name and a digest of its arguments
    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    worker = models.CharField(max_length=200, blank=True, default="")  # host:pid of the beating process
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)
    requeues = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.task_name} {self.args} (beat {self.beat_at})"
