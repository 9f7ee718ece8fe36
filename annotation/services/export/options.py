"""Export options: what to export and how, validated in one place."""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from annotation.errors import ApplicationError

FORMATS = ("pairs", "unpaired", "rankings")
FILE_FORMATS = ("jsonl", "parquet")
POLICIES = ("all", "best_vs_rest", "adjacent")


# Options


@dataclass
class ExportOptions:
    """What to export and how. Validated by `export_options_from_input`.

    Args:
        format: pairs | unpaired | rankings.
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
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    desirable_tiers: int = 1
    undesirable_tiers: int = 1

    def filters(self) -> dict[str, Any]:
        return {
            "min_agreement": self.min_agreement,
            "min_votes": self.min_votes,
            "exclude_flagged": self.exclude_flagged,
            "exclude_gold": self.exclude_gold,
            "annotators": self.annotators,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
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
        return {"consensus": "borda", "annotator_ids": "hmac-sha256 with a per-export random salt, not stored"}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        data["until"] = self.until.isoformat() if self.until else None
        return data


def _as_datetime(name: str, value: Any, errors: dict[str, list[str]]) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        parsed = parse_datetime(str(value))
        if parsed is None:
            errors[name] = [f"not an ISO 8601 date-time: {value!r}"]
            return None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, dt.UTC)
    return parsed


def export_options_from_input(data: dict[str, Any]) -> ExportOptions:
    """Validate raw options (API body, command line, stored snapshot options) into ExportOptions.

    Raises ApplicationError (400) naming every bad field; unknown fields are errors too, so a
    misspelt filter never silently exports everything.
    """
    errors: dict[str, list[str]] = {}
    known = set(ExportOptions.__dataclass_fields__)
    for key in data:
        if key not in known:
            errors[key] = ["unknown option"]
    opts = ExportOptions()

    def choice(name: str, allowed: tuple[str, ...]) -> None:
        if name in data and data[name] is not None:
            if data[name] not in allowed:
                errors[name] = [f"must be one of {', '.join(allowed)}; got {data[name]!r}"]
            else:
                setattr(opts, name, data[name])

    def number(name: str, kind: type, low: float | None, high: float | None, *, high_open: bool = False,
               nullable: bool = False) -> None:
        if name not in data or (data[name] is None and not nullable):
            return
        value = data[name]
        if value is None:
            setattr(opts, name, None)
            return
        try:
            if isinstance(value, bool):
                raise ValueError
            number_value = kind(value)
            if kind is int and float(value) != number_value:
                raise ValueError
        except (TypeError, ValueError):
            errors[name] = [f"must be {'an integer' if kind is int else 'a number'}; got {value!r}"]
            return
        if low is not None and number_value < low:
            errors[name] = [f"must be at least {low}; got {number_value}"]
        elif high is not None and (number_value >= high if high_open else number_value > high):
            errors[name] = [f"must be {'below' if high_open else 'at most'} {high}; got {number_value}"]
        else:
            setattr(opts, name, number_value)

    def flag(name: str) -> None:
        if name in data and data[name] is not None:
            if not isinstance(data[name], bool):
                errors[name] = [f"must be true or false; got {data[name]!r}"]
            else:
                setattr(opts, name, data[name])

    if data.get("format") is None:
        errors["format"] = [f"required: one of {', '.join(FORMATS)}"]
    choice("format", FORMATS)
    choice("file_format", FILE_FORMATS)
    choice("policy", POLICIES)
    number("test_fraction", float, 0.0, 1.0, high_open=True)
    number("seed", int, 0, 2**63 - 1)
    number("min_agreement", float, 0.0, 1.0, nullable=True)
    number("min_votes", int, 1, None)
    number("desirable_tiers", int, 1, None)
    number("undesirable_tiers", int, 1, None)
    flag("exclude_flagged")
    flag("exclude_gold")
    annotators = data.get("annotators")
    if annotators is not None:
        if not isinstance(annotators, list | tuple) or not all(isinstance(a, str) and a for a in annotators):
            errors["annotators"] = ["must be a list of usernames"]
        else:
            opts.annotators = sorted(set(annotators))
    opts.since = _as_datetime("since", data.get("since"), errors)
    opts.until = _as_datetime("until", data.get("until"), errors)
    if opts.since and opts.until and opts.since >= opts.until:
        errors["until"] = ["must be after since"]
    if errors:
        names = ", ".join(sorted(errors))
        raise ApplicationError(f"Invalid export options: {names}.", fields=errors)
    return opts


