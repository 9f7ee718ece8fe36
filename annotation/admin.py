from django.contrib import admin

from . import models


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "responses_per_prompt", "overlap", "allow_ties", "gold_rate", "created_at")
    search_fields = ("slug", "name")


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "project", "role")
    list_filter = ("role", "project")


@admin.register(models.Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "external_id", "created_at")
    list_filter = ("project",)
    search_fields = ("external_id",)


@admin.register(models.GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "backend", "model_name", "status", "prompts_done", "prompts_total")
    list_filter = ("status", "backend")


@admin.register(models.Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ("id", "prompt", "run", "sample_index", "finish_reason", "token_count")
    raw_id_fields = ("prompt", "run")


@admin.register(models.RankingTask)
class RankingTaskAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "prompt", "is_gold", "priority", "submitted_count", "active_count", "is_complete")
    list_filter = ("project", "is_gold", "is_complete")
    raw_id_fields = ("prompt", "responses")


@admin.register(models.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "task", "annotator", "status", "lease_expires_at")
    list_filter = ("status",)
    raw_id_fields = ("task",)


@admin.register(models.Ranking)
class RankingAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "task", "annotator", "created_at")
    raw_id_fields = ("assignment", "task")


@admin.register(models.ExportSnapshot)
class ExportSnapshotAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "format", "file_format", "status", "rows_done", "created_at")


@admin.register(models.TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "kind", "status", "steps_done", "steps_total", "created_at")


@admin.register(models.TrainingMetric)
class TrainingMetricAdmin(admin.ModelAdmin):
    list_display = ("id", "job", "step", "split")


@admin.register(models.AgreementReport)
class AgreementReportAdmin(admin.ModelAdmin):
    list_display = ("project", "computed_at", "stale", "rankings_seen")
