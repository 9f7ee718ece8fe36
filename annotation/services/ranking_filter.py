"""Which rankings count: the one since/until/annotators filter, shared by agreement and exports.

- `RankingFilterSerializer`: the filter's input (API body or query string, command line), checked
  here once: since and until are ISO 8601 dates or date-times (naive = UTC) with since < until;
  annotators is a list of usernames (or one comma-separated string).
- `ranking_filter_resolve`: names -> user ids for one project; a username is known to a project
  when the user is a member of it or has submitted a ranking in it (so a former member's
  rankings can still be selected); any other name is refused, naming `annotators`.
- `exclude_former_members`: leave out the rankings of people no longer members of the project (a
  removed member's rankings stay; "former" is derived from the membership's absence, at resolve time).
- `ranking_filter_queryset` (ORM) and `ranking_filter_sql` (the export's raw SQL) apply it: a
  ranking counts when submitted in [since, until) by one of the annotators (and a current member).

A new filter (for example a ranking's source) is one field on RankingFilter and its serializer
and one condition in each of the two apply functions.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q, QuerySet
from rest_framework import serializers

from annotation.errors import ApplicationError
from annotation.models import Membership, Project, Ranking
from annotation.services.fields import QueryFlag, Timestamp, Usernames, serializer_validate


class RankingFilterSerializer(serializers.Serializer):
    since = Timestamp(required=False, allow_null=True, default=None,
                      help_text="Count rankings submitted at or after this ISO 8601 date or date-time (naive: UTC).")
    until = Timestamp(required=False, allow_null=True, default=None,
                      help_text="Count rankings submitted before this ISO 8601 date or date-time (naive: UTC).")
    annotators = Usernames(required=False, allow_null=True, default=None,
                           help_text="Count only these annotators' rankings: usernames (a list, or comma-separated), each a "
                                     "member of the project or someone who has ranked in it.")
    exclude_former_members = QueryFlag(required=False, default=False,
                                  help_text="Leave out the rankings of people who are no longer members of the project.")

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise serializers.ValidationError({"until": ["must be later than since"]})
        return data


@dataclass(frozen=True)
class RankingFilter:
    """Rankings submitted in [since, until) by these annotators (None: no bound, everyone).

    `annotator_ids` is filled by ranking_filter_resolve for one project; the apply functions need it.
    """

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    annotators: tuple[str, ...] | None = None
    exclude_former_members: bool = False
    annotator_ids: frozenset[int] | None = field(default=None, compare=False)
    member_ids: frozenset[int] | None = field(default=None, compare=False)  # the current members, with exclude_former_members

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> RankingFilter:
        """From RankingFilterSerializer's validated data (extra keys are ignored)."""
        names = data.get("annotators")
        return cls(since=data.get("since"), until=data.get("until"), annotators=tuple(names) if names else None,
                   exclude_former_members=bool(data.get("exclude_former_members")))

    @property
    def is_empty(self) -> bool:
        return self.since is None and self.until is None and not self.annotators and not self.exclude_former_members

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "annotators": list(self.annotators) if self.annotators else None,
            "exclude_former_members": self.exclude_former_members,
        }


def ranking_filter_resolve(*, project: Project, ranking_filter: RankingFilter) -> RankingFilter:
    """The filter with its annotators' user ids; ApplicationError naming `annotators` for an unknown name."""
    member_ids = None
    if ranking_filter.exclude_former_members:
        member_ids = frozenset(Membership.objects.filter(project=project).values_list("user_id", flat=True))
    if not ranking_filter.annotators:
        return replace(ranking_filter, member_ids=member_ids)
    names = list(ranking_filter.annotators)
    users = get_user_model().objects.filter(username__in=names).filter(
        Q(pk__in=Membership.objects.filter(project=project).values("user_id"))
        | Q(pk__in=Ranking.objects.filter(project=project).values("annotator_id"))
    )
    ids = dict(users.values_list("username", "id"))
    unknown = [name for name in names if name not in ids]
    if unknown:
        raise ApplicationError(
            f"Unknown annotators for project '{project.slug}': {', '.join(unknown)}.",
            fields={"annotators": [f"not members of project '{project.slug}' (nor ever ranked in it): {', '.join(unknown)}"]},
        )
    return replace(ranking_filter, annotator_ids=frozenset(ids.values()), member_ids=member_ids)


def ranking_filter_build(*, project: Project, data: Mapping[str, Any]) -> RankingFilter:
    """Validate raw filter input (command line, query string) and resolve it for the project."""
    validated = serializer_validate(RankingFilterSerializer, data, what="ranking filters")
    return ranking_filter_resolve(project=project, ranking_filter=RankingFilter.from_data(validated))


def _require_resolved(ranking_filter: RankingFilter) -> None:
    if (ranking_filter.annotators and ranking_filter.annotator_ids is None) or (
            ranking_filter.exclude_former_members and ranking_filter.member_ids is None):
        raise ValueError("resolve the filter for its project first (ranking_filter_resolve)")


def ranking_filter_queryset(queryset: QuerySet, ranking_filter: RankingFilter, *, time_field: str = "created_at",
                            annotator_field: str = "annotator_id") -> QuerySet:
    """The queryset restricted by the filter; the fields name a ranking's (or an assignment's) time and annotator."""
    _require_resolved(ranking_filter)
    if ranking_filter.since:
        queryset = queryset.filter(**{f"{time_field}__gte": ranking_filter.since})
    if ranking_filter.until:
        queryset = queryset.filter(**{f"{time_field}__lt": ranking_filter.until})
    if ranking_filter.annotator_ids is not None:
        queryset = queryset.filter(**{f"{annotator_field}__in": sorted(ranking_filter.annotator_ids)})
    if ranking_filter.member_ids is not None:
        queryset = queryset.filter(**{f"{annotator_field}__in": sorted(ranking_filter.member_ids)})
    return queryset


def ranking_filter_sql(ranking_filter: RankingFilter, *, alias: str) -> tuple[list[str], list[Any]]:
    """SQL conditions on the ranking table aliased `alias`, with their parameters (values never in the text)."""
    _require_resolved(ranking_filter)
    quote = connection.ops.quote_name
    column = {name: f"{quote(alias)}.{quote(Ranking._meta.get_field(name).column)}" for name in ("created_at", "annotator")}
    conditions: list[str] = []
    params: list[Any] = []
    if ranking_filter.since:
        conditions.append(f"{column['created_at']} >= %s")
        params.append(ranking_filter.since)
    if ranking_filter.until:
        conditions.append(f"{column['created_at']} < %s")
        params.append(ranking_filter.until)
    if ranking_filter.annotator_ids is not None:
        conditions.append(f"{column['annotator']} = ANY(%s)")
        params.append(sorted(ranking_filter.annotator_ids))
    if ranking_filter.member_ids is not None:
        conditions.append(f"{column['annotator']} = ANY(%s)")
        params.append(sorted(ranking_filter.member_ids))
    return conditions, params
