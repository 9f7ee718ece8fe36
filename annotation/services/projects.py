"""Projects, memberships and users: creation with validation, roles, API tokens.

Every rule about what a valid project is lives here; the command, the API and the demo call it.
"""
from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.text import slugify
from rest_framework.authtoken.models import Token

from annotation.errors import ApplicationError, Conflict, NotFound
from annotation.models import Membership, Project, Role

User = get_user_model()

# The project fields a caller may set, with their defaults (the model's).
PROJECT_DEFAULTS: dict[str, Any] = {
    "instructions": "",
    "responses_per_prompt": 4,
    "overlap": 3,
    "allow_ties": False,
    "gold_rate": 0.0,
    "lease_seconds": 900,
    "gen_model": "",
    "gen_system_prompt": "",
    "gen_temperature": 0.8,
    "gen_top_p": 0.95,
    "gen_max_new_tokens": 256,
    "gen_seed": 0,
}
MAX_RESPONSES_PER_PROMPT = 16
MAX_OVERLAP = 100
MIN_LEASE_SECONDS = 30
MAX_LEASE_SECONDS = 7 * 24 * 3600


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def project_validate(*, name: str, slug: str, values: dict[str, Any]) -> dict[str, list[str]]:
    """Every problem with these project settings, field name -> messages (empty when valid)."""
    errors: dict[str, list[str]] = {}

    def bad(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not isinstance(name, str) or not name.strip():
        bad("name", "must not be empty")
    elif len(name) > 200:
        bad("name", "must be at most 200 characters")
    if slug and (slugify(slug) != slug or len(slug) > 80):
        bad("slug", "must be lowercase letters, digits and hyphens, at most 80 characters")

    k = values["responses_per_prompt"]
    if not _is_int(k) or not 2 <= k <= MAX_RESPONSES_PER_PROMPT:
        bad("responses_per_prompt", f"must be an integer from 2 to {MAX_RESPONSES_PER_PROMPT}")
    overlap = values["overlap"]
    if not _is_int(overlap) or not 1 <= overlap <= MAX_OVERLAP:
        bad("overlap", f"must be an integer from 1 to {MAX_OVERLAP}")
    gold_rate = values["gold_rate"]
    if not _is_number(gold_rate) or not 0 <= gold_rate < 1:
        bad("gold_rate", "must be a number with 0 <= gold_rate < 1")
    lease = values["lease_seconds"]
    if not _is_int(lease) or not MIN_LEASE_SECONDS <= lease <= MAX_LEASE_SECONDS:
        bad("lease_seconds", f"must be an integer from {MIN_LEASE_SECONDS} to {MAX_LEASE_SECONDS}")
    if not isinstance(values["allow_ties"], bool):
        bad("allow_ties", "must be true or false")
    for field in ("instructions", "gen_model", "gen_system_prompt"):
        if not isinstance(values[field], str):
            bad(field, "must be a string")
    if isinstance(values["gen_model"], str) and len(values["gen_model"]) > 500:
        bad("gen_model", "must be at most 500 characters")
    temperature = values["gen_temperature"]
    if not _is_number(temperature) or not 0 <= temperature <= 5:
        bad("gen_temperature", "must be a number from 0 to 5")
    top_p = values["gen_top_p"]
    if not _is_number(top_p) or not 0 < top_p <= 1:
        bad("gen_top_p", "must be a number with 0 < top_p <= 1")
    max_new = values["gen_max_new_tokens"]
    if not _is_int(max_new) or not 1 <= max_new <= 32768:
        bad("gen_max_new_tokens", "must be an integer from 1 to 32768")
    if not _is_int(values["gen_seed"]) or not -(2**31) <= values["gen_seed"] < 2**31:
        bad("gen_seed", "must be a 32-bit integer")
    return errors


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
        **settings: any of PROJECT_DEFAULTS (responses_per_prompt, overlap, allow_ties, gold_rate,
            lease_seconds, instructions, gen_*). None means the default.

    Raises:
        ApplicationError naming every invalid field; Conflict if an explicit slug is taken.
    """
    unknown = sorted(set(settings) - set(PROJECT_DEFAULTS))
    if unknown:
        raise ApplicationError(
            f"Unknown project setting(s): {', '.join(unknown)}.", fields={key: ["unknown setting"] for key in unknown}
        )
    values = {key: (settings.get(key) if settings.get(key) is not None else default) for key, default in PROJECT_DEFAULTS.items()}
    # Integral floats from JSON or a command line (e.g. 3.0) are accepted as integers.
    for key in ("responses_per_prompt", "overlap", "lease_seconds", "gen_max_new_tokens", "gen_seed"):
        if isinstance(values[key], float) and values[key].is_integer():
            values[key] = int(values[key])
    errors = project_validate(name=name, slug=slug, values=values)
    if errors:
        raise ApplicationError(f"Invalid project: {', '.join(errors)}.", fields=errors)
    if slug:
        if Project.objects.filter(slug=slug).exists():
            raise ApplicationError(
                f"A project with slug '{slug}' already exists.", code="conflict", status=409, fields={"slug": ["already taken"]}
            )
    else:
        slug = _unique_slug(slugify(name))
    project = Project.objects.create(name=name.strip(), slug=slug, created_by=created_by, **values)
    if created_by is not None:
        Membership.objects.create(user=created_by, project=project, role=Role.ADMIN)
    return project


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
    """Remove `user` from the project. The last admin cannot be removed (the project would be orphaned)."""
    Project.objects.select_for_update().filter(pk=project.pk).first()
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is None:
        raise NotFound("This user is not a member of the project.")
    if membership.role == Role.ADMIN:
        _ensure_other_admin(project=project, user=user)
    membership.delete()


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
