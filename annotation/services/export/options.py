"""Export options: ExportOptions, the one typed options object of an export, and its one validation.

`ExportOptionsSerializer` is the only place the options are checked. The API documents its body
with it (api/serializers/exports.py), `export_preferences` builds its command line from its
fields (names, help texts, defaults), and the services validate every options dict through it
(`export_options_from_input`: an API body, a command line, a snapshot's stored options). The
ranking filter (since, until, annotators) is the one agreement uses too
(annotation.services.ranking_filter).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from annotation.models import Project
from annotation.services.fields import Choice, Flag, Integer, Number, StrictSerializer, serializer_validate
from annotation.services.ranking_filter import RankingFilter, RankingFilterSerializer, ranking_filter_resolve

FORMATS = ("pairs", "unpaired", "rankings", "sft")
FILE_FORMATS = ("jsonl", "parquet")
POLICIES = ("all", "best_vs_rest", "adjacent")
SOURCES = ("human", "judge", "all")


@dataclass
class ExportOptions:
    """What to export and how (built by `export_options_from_input`; ExportOptionsSerializer documents each field).

    Args:
        format: pairs | unpaired | rankings | sft.
        file_format: jsonl | parquet.
        test_fraction: share of prompts in the test split, 0 <= f < 1.
        seed: seeds the split.
        policy: pairs from the consensus tiers: all (every better/worse pair), best_vs_rest (the
            top tier against every lower one), adjacent (each tier against the next one).
        min_agreement: keep only tasks whose agreement is at least this (tasks with a single
            ranking have no agreement and are dropped when this is set).
        min_votes: keep only tasks with at least this many (filtered) rankings.
        exclude_flagged: leave out responses that any counted annotator flagged (pairs, unpaired).
        exclude_gold: leave out gold tasks.
        annotators: count only the rankings of these usernames.
        exclude_former_members: leave out the rankings of people no longer members of the project.
        since, until: count only rankings submitted in [since, until).
        desirable_tiers, undesirable_tiers: unpaired: how many top / bottom consensus tiers are
            labelled true / false.
    """

    format: str = "pairs"
    file_format: str = "jsonl"
    test_fraction: float = 0.1
    seed: int = 0
    policy: str = "all"
    min_agreement: float | None = None
    min_votes: int = 1
    exclude_flagged: bool = False
    exclude_gold: bool = False
    annotators: list[str] | None = None
    exclude_former_members: bool = False
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    desirable_tiers: int = 1
    undesirable_tiers: int = 1
    source: str = "human"

    @property
    def ranking_filter(self) -> RankingFilter:
        """Which rankings count (not yet resolved for a project)."""
        return RankingFilter(since=self.since, until=self.until, annotators=tuple(self.annotators) if self.annotators else None,
                             exclude_former_members=self.exclude_former_members)

    def filters(self) -> dict[str, Any]:
        return {
            "min_agreement": self.min_agreement,
            "min_votes": self.min_votes,
            "exclude_flagged": self.exclude_flagged,
            "exclude_gold": self.exclude_gold,
            "source": self.source,
            **self.ranking_filter.as_json(),
        }

    def policy_description(self) -> dict[str, Any]:
        if self.format == "pairs":
            return {
                "pairs": self.policy,
                "consensus": "borda",
                "ties": "dropped",
                "margin": "share of the pair's votes that preferred chosen",
            }
        if self.format == "unpaired":
            return {
                "consensus": "borda",
                "desirable_tiers": self.desirable_tiers,
                "undesirable_tiers": self.undesirable_tiers,
                "middle_tiers": "dropped",
            }
        if self.format == "sft":
            return {
                "sources": ["best_of_n"],
                "best_of_n": "each ranking task's consensus-best response (borda) as the assistant turn",
                "ties_for_best": "dropped (counted in tasks_tied_for_best)",
            }
        return {"consensus": "borda", "annotator_ids": "hmac-sha256 with a per-export random salt, not stored"}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        data["until"] = self.until.isoformat() if self.until else None
        return data


class ExportOptionsSerializer(StrictSerializer, RankingFilterSerializer):
    """The options of one export: the body of `POST projects/{id}/exports/` and the flags of `export_preferences`.

    Unknown keys are refused, so a misspelt filter never silently exports everything.
    """

    format = Choice(FORMATS, error_messages={"required": f"required: one of {', '.join(FORMATS)}"},
                    help_text="What to export: TRL preference pairs, TRL unpaired preference (KTO), every ranking as "
                              "given, or TRL conversational language modelling (sft, best-of-n).")
    file_format = Choice(FILE_FORMATS, required=False, default="jsonl", help_text="File format (both carry the same columns).")
    test_fraction = Number(min_value=0.0, below=1.0, required=False, default=0.1,
                           help_text="Share of prompts in the test split, 0 <= f < 1.")
    seed = Integer(min_value=0, max_value=2**63 - 1, required=False, default=0, help_text="Seed of the prompt-disjoint split.")
    policy = Choice(POLICIES, required=False, default="all",
                    help_text="pairs: which consensus pairs to emit.")
    min_agreement = Number(min_value=0.0, max_value=1.0, required=False, allow_null=True, default=None,
                           help_text="Keep tasks whose agreement is at least this (0..1); single-ranking tasks are dropped.")
    min_votes = Integer(min_value=1, required=False, default=1, help_text="Keep tasks with at least this many rankings.")
    exclude_flagged = Flag(required=False, default=False, help_text="Leave out responses any counted annotator flagged.")
    exclude_gold = Flag(required=False, default=False, help_text="Leave out gold tasks.")
    desirable_tiers = Integer(min_value=1, required=False, default=1,
                              help_text="unpaired: top consensus tiers labelled true.")
    undesirable_tiers = Integer(min_value=1, required=False, default=1,
                                help_text="unpaired: bottom consensus tiers labelled false.")
    source = Choice(SOURCES, required=False, default="human",
                    help_text="Whose rankings: people's (human), the latest judge run's (judge; pairs carry its "
                              "soft preference as margin), or both (all). Every row says which in `source`.")


_OPTION_NAMES = {f.name for f in fields(ExportOptions)}
assert set(ExportOptionsSerializer().fields) == _OPTION_NAMES, "ExportOptions and its serializer name the same options"


def export_options_from_input(data: Mapping[str, Any], *, project: Project | None = None) -> ExportOptions:
    """Validate raw options (API body, command line, stored snapshot options) into ExportOptions.

    Raises ApplicationError (400) naming every bad field, unknown fields included. With a
    project, the annotators are checked against it too (`annotators` names an unknown one).
    """
    validated = serializer_validate(ExportOptionsSerializer, data, what="export options")
    options = ExportOptions(**validated)
    if project is not None:
        ranking_filter_resolve(project=project, ranking_filter=options.ranking_filter)
    return options
