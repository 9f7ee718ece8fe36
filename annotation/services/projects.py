"""Projects, memberships and users: creation with validation, roles, API tokens.

Every rule about what a valid project is lives here; the command, the API and the demo call it.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, fields
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.text import slugify
from rest_framework.authtoken.models import Token

from annotation.errors import ApplicationError, Conflict, NotFound
from annotation.models import Membership, Project, Role
from annotation.services.agreement_cache import agreement_schedule_refresh
from annotation.services.assignment import assignments_end_for_annotator
from annotation.services.generation import MAX_MODEL_CHARS, sampling_problems
from annotation.services.reliability import WEIGHTING
from annotation.services.task_agreement import ADAPTIVE_RULES
from annotation.services.validation import int_problem, integral_floats_as_ints, is_number, string_problem

User = get_user_model()

MAX_NAME_CHARS = 200
MAX_SLUG_CHARS = 80
MAX_RESPONSES_PER_PROMPT = 16
MAX_OVERLAP = 100
MIN_LEASE_SECONDS = 30
MAX_LEASE_SECONDS = 7 * 24 * 3600
MAX_DEMONSTRATION_CHARS = 200_000
_INTEGER_FIELDS = ("responses_per_prompt", "overlap", "min_overlap", "lease_seconds", "gen_max_new_tokens", "gen_seed",
                   "max_demonstration_chars")
TASK_TYPES = ("ranking", "demonstration")
DEFAULT_AGREEMENT_TARGET = 0.8
JUDGE_ROUTING = ("off", "uncertain")


@dataclass(frozen=True, kw_only=True)
class ProjectOptions:
    """What a caller sets when creating a project (the API's body, `create_project`'s options, the demo).

    The defaults are the model's. The rules are `problems()`, checked by project_create: the API's
    serializer checks JSON types only and the command argparse types only. The gen_* sampling
    defaults follow a generation run's own rule (generation.sampling_problems), since they become
    a run's settings.
    """

    name: str
    slug: str = ""
    instructions: str = ""
    responses_per_prompt: int = 4
    overlap: int = 3
    min_overlap: int | None = None  # None: the overlap (fixed overlap, the behaviour before adaptive overlap)
    agreement_target: float = DEFAULT_AGREEMENT_TARGET
    adaptive_rule: str = "agreement"  # what "they agree" means (task_agreement.ADAPTIVE_RULES)
    consensus_weighting: str = "none"  # what a ranking counts in the consensus (reliability.WEIGHTING)
    allow_ties: bool = False
    gold_rate: float = 0.0
    lease_seconds: int = 900
    task_type: str = "ranking"
    review: bool = False
    max_demonstration_chars: int = 20_000
    gen_model: str = ""
    gen_system_prompt: str = ""
    gen_temperature: float = 0.8
    gen_top_p: float = 0.95
    gen_max_new_tokens: int = 256
    gen_seed: int = 0
    # AI feedback (docs/judge.md): routing serves people the tasks the judge is unsure of, plus an audit sample.
    judge_prompt_template: str = ""
    judge_routing: str = "off"
    judge_confidence: float = 0.8
    judge_audit_rate: float = 0.1

    @classmethod
    def from_input(cls, *, name: Any, slug: Any = "", **settings: Any) -> ProjectOptions:
        """Options from loose input: None means the default, integral floats (3.0) count as integers.

        Raises ApplicationError naming every setting that is not a project option.
        """
        known = {f.name for f in fields(cls)} - {"name", "slug"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ApplicationError(
                f"Unknown project setting(s): {', '.join(unknown)}.", fields={key: ["unknown setting"] for key in unknown}
            )
        given = integral_floats_as_ints({key: value for key, value in settings.items() if value is not None}, _INTEGER_FIELDS)
        return cls(name=name, slug=slug or "", **given)

    def problems(self) -> dict[str, list[str]]:
        """Every problem with these options, field name -> messages (empty when valid)."""
        name, slug = self.name, self.slug
        found = {
            "name": string_problem(name, max_length=MAX_NAME_CHARS) or ("" if name.strip() else "must not be empty"),
            "slug": ""
            if not slug or (isinstance(slug, str) and slugify(slug) == slug and len(slug) <= MAX_SLUG_CHARS)
            else f"must be lowercase letters, digits and hyphens, at most {MAX_SLUG_CHARS} characters",
            "responses_per_prompt": int_problem(self.responses_per_prompt, low=2, high=MAX_RESPONSES_PER_PROMPT),
            "overlap": int_problem(self.overlap, low=1, high=MAX_OVERLAP),
            "min_overlap": self._min_overlap_problem(),
            "agreement_target": ""
            if is_number(self.agreement_target) and 0 <= self.agreement_target <= 1
            else "must be a number with 0 <= agreement_target <= 1",
            "adaptive_rule": "" if self.adaptive_rule in ADAPTIVE_RULES else f"must be one of {', '.join(ADAPTIVE_RULES)}",
            "consensus_weighting": "" if self.consensus_weighting in WEIGHTING else f"must be one of {', '.join(WEIGHTING)}",
            "gold_rate": ("must be a number with 0 <= gold_rate < 1" if not (is_number(self.gold_rate) and 0 <= self.gold_rate < 1)
                          else "must be 0 in a demonstration project (gold tasks have a known ranking)"
                          if self.gold_rate and self.task_type == "demonstration" else ""),
            "lease_seconds": int_problem(self.lease_seconds, low=MIN_LEASE_SECONDS, high=MAX_LEASE_SECONDS),
            "allow_ties": "" if isinstance(self.allow_ties, bool) else "must be true or false",
            "task_type": "" if self.task_type in TASK_TYPES else f"must be one of {', '.join(TASK_TYPES)}",
            "review": ("must be true or false" if not isinstance(self.review, bool)
                       else "only demonstration projects are reviewed" if self.review and self.task_type != "demonstration" else ""),
            "max_demonstration_chars": int_problem(self.max_demonstration_chars, low=1, high=MAX_DEMONSTRATION_CHARS),
            "instructions": string_problem(self.instructions),
            "gen_model": string_problem(self.gen_model, max_length=MAX_MODEL_CHARS),
            "gen_system_prompt": string_problem(self.gen_system_prompt),
            "judge_prompt_template": string_problem(self.judge_prompt_template),
            "judge_routing": "" if self.judge_routing in JUDGE_ROUTING else f"must be one of {', '.join(JUDGE_ROUTING)}",
            "judge_confidence": "" if is_number(self.judge_confidence) and 0.5 <= self.judge_confidence <= 1
            else "must be a number with 0.5 <= judge_confidence <= 1",
            "judge_audit_rate": "" if is_number(self.judge_audit_rate) and 0 <= self.judge_audit_rate <= 1
            else "must be a number with 0 <= judge_audit_rate <= 1",
        }
        if not found["judge_prompt_template"] and self.judge_prompt_template:
            from sampling.judge import template_problem

            found["judge_prompt_template"] = template_problem(self.judge_prompt_template)
        sampling = sampling_problems(temperature=self.gen_temperature, top_p=self.gen_top_p,
                                     max_new_tokens=self.gen_max_new_tokens, seed=self.gen_seed)
        found.update({f"gen_{key}": message for key, message in sampling.items()})
        return {key: [message] for key, message in found.items() if message}

    def _min_overlap_problem(self) -> str:
        if self.min_overlap is None:
            return ""
        if int_problem(self.overlap, low=1, high=MAX_OVERLAP):
            return int_problem(self.min_overlap, low=1, high=MAX_OVERLAP)
        if self.task_type == "demonstration" and self.min_overlap != self.overlap:
            return "must equal overlap in a demonstration project (adaptive overlap compares rankings)"
        return int_problem(self.min_overlap, low=1, high=self.overlap) and f"must be an integer from 1 to overlap ({self.overlap})"

    def model_fields(self) -> dict[str, Any]:
        """The Project fields these options set (all but name and slug, which project_create settles)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("name", "slug")}


# The project fields a caller may set, with their defaults (the model's).
PROJECT_DEFAULTS: dict[str, Any] = ProjectOptions(name="").model_fields()


def _unique_slug(base: str) -> str:
    base = (base or "project")[:70]
    slug, n = base, 2
    while Project.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def project_create(*, name: str, created_by: AbstractBaseUser | None = None, slug: str = "", **settings: Any) -> Project:
    """Create a project; its creator (if any) becomes its admin.

    Args:
        name: shown to people.
        created_by: the user creating it, made an admin member.
        slug: the URL name; derived from `name` when empty (made unique with -2, -3, ...).
        **settings: any field of ProjectOptions (responses_per_prompt, overlap, allow_ties,
            gold_rate, lease_seconds, instructions, gen_*). None means the default.

    Raises:
        ApplicationError naming every invalid field; Conflict if an explicit slug is taken.
    """
    options = ProjectOptions.from_input(name=name, slug=slug, **settings)
    errors = options.problems()
    if errors:
        raise ApplicationError(f"Invalid project: {', '.join(errors)}.", fields=errors)
    slug = options.slug
    if slug:
        if Project.objects.filter(slug=slug).exists():
            raise ApplicationError(
                f"A project with slug '{slug}' already exists.", code="conflict", status=409, fields={"slug": ["already taken"]}
            )
    else:
        slug = _unique_slug(slugify(options.name))
    project = Project.objects.create(name=options.name.strip(), slug=slug, created_by=created_by, **options.model_fields())
    if created_by is not None:
        Membership.objects.create(user=created_by, project=project, role=Role.ADMIN)
    return project


@transaction.atomic
def project_create_with_admin(*, name: str, owner: AbstractBaseUser | None, **kwargs: Any) -> tuple[Project, UserCreated | None]:
    """Create a project that has an admin from the start (the `create_project` command).

    The API's creator is always its admin; a command has no caller, so without `owner` a new user
    `<slug>-admin` is created and made admin (its password and token are returned, to be shown
    once). A project with no admin could not be managed by anyone but a superuser.
    """
    project = project_create(name=name, created_by=owner, **kwargs)
    if owner is not None:
        return project, None
    username = f"{project.slug}-admin"[:140]
    if User.objects.filter(username=username).exists():
        username = f"{username}-{secrets.token_hex(3)}"
    created = user_create(username=username)
    Membership.objects.create(user=created.user, project=project, role=Role.ADMIN)
    return project, created


def project_get_by_slug(*, slug: str) -> Project:
    """The project with this slug (no permission check: for commands run by an operator)."""
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise NotFound(f"No project with slug '{slug}'.")
    return project


def _role_checked(role: str) -> str:
    if role not in Role.values:
        choices = ", ".join(Role.values)
        raise ApplicationError(f"Unknown role '{role}' (expected one of {choices}).", fields={"role": [f"must be one of {choices}"]})
    return role


@transaction.atomic
def membership_add(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    """Make `user` a member with `role`, or change the role of an existing member."""
    _role_checked(role)
    # Lock the project's memberships so a concurrent demotion cannot remove the last admin.
    Project.objects.select_for_update().filter(pk=project.pk).first()
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is None:
        return Membership.objects.create(project=project, user=user, role=role)
    if membership.role == Role.ADMIN and role != Role.ADMIN:
        _ensure_other_admin(project=project, user=user)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, project: Project, user: AbstractBaseUser) -> None:
    """Remove `user` from the project. The last admin cannot be removed (the project would be orphaned).

    Their live leases end in the same transaction (slots back to the pool), and from then on their
    assignments are not theirs to submit, heartbeat or skip (assignment_get_for_annotator requires a
    membership). Their past rankings stay; agreement marks them as a former member's and the
    ranking filter's exclude_former_members leaves them out.
    """
    Project.objects.select_for_update().filter(pk=project.pk).first()
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is None:
        raise NotFound("This user is not a member of the project.")
    if membership.role == Role.ADMIN:
        _ensure_other_admin(project=project, user=user)
    membership.delete()
    assignments_end_for_annotator(project_id=project.pk, annotator_id=user.pk)
    transaction.on_commit(partial(agreement_schedule_refresh, project_id=project.pk))


def _ensure_other_admin(*, project: Project, user: AbstractBaseUser) -> None:
    if not Membership.objects.filter(project=project, role=Role.ADMIN).exclude(user=user).exists():
        raise Conflict("A project needs at least one admin: add another admin first.")


def memberships_of_project(*, project: Project):
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username")


@dataclass
class UserCreated:
    user: AbstractBaseUser
    password: str  # shown once; only its hash is stored
    token: str


def user_token(*, user: AbstractBaseUser) -> str:
    """The user's API token, created on first use."""
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


@transaction.atomic
def user_create(
    *, username: str, email: str = "", password: str | None = None, is_staff: bool = False, is_superuser: bool = False
) -> UserCreated:
    """Create a user with a password (generated when not given) and an API token."""
    username = (username or "").strip()
    if not username or len(username) > 150:
        raise ApplicationError("Invalid username.", fields={"username": ["must be 1 to 150 characters"]})
    if User.objects.filter(username=username).exists():
        raise ApplicationError(f"User '{username}' already exists.", code="conflict", status=409, fields={"username": ["already taken"]})
    password = password or secrets.token_urlsafe(12)
    user = User.objects.create_user(
        username=username, email=email, password=password, is_staff=is_staff or is_superuser, is_superuser=is_superuser
    )
    return UserCreated(user=user, password=password, token=user_token(user=user))


def user_get(*, username: str) -> AbstractBaseUser:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"No user '{username}'.")
    return user
