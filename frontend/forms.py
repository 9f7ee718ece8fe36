"""HTML forms of the engineers' pages. They only turn form strings into the typed values the
services take; every rule (ranges, choices, unknown options) is checked by the service itself."""
from __future__ import annotations

from typing import Any

from django import forms

from annotation.services.export import FILE_FORMATS, FORMATS, POLICIES

FORMAT_HELP = {
    "pairs": "pairs: TRL preference (prompt, chosen, rejected) for reward models and DPO",
    "unpaired": "unpaired: TRL unpaired preference (prompt, completion, label) for KTO",
    "rankings": "rankings: every annotation as given, with the consensus and agreement",
}


class ExportForm(forms.Form):
    """The options of `export_preferences` (annotation.services.export.ExportOptions)."""

    format = forms.ChoiceField(choices=[(f, FORMAT_HELP.get(f, f)) for f in FORMATS], initial="pairs")
    file_format = forms.ChoiceField(choices=[(f, f) for f in FILE_FORMATS], initial="jsonl", label="File format")
    policy = forms.ChoiceField(
        choices=[(p, p) for p in POLICIES], initial="all", label="Pair policy",
        help_text="pairs: all better/worse pairs of the consensus, the best against the rest, or adjacent tiers.",
    )
    test_fraction = forms.FloatField(initial=0.1, label="Test fraction", help_text="Share of prompts held out (0 to below 1).")
    seed = forms.IntegerField(initial=0, help_text="Seeds the prompt-disjoint split.")
    min_agreement = forms.FloatField(required=False, label="Minimum agreement", help_text="0 to 1; empty: no filter.")
    min_votes = forms.IntegerField(required=False, label="Minimum rankings per task", initial=1)
    exclude_flagged = forms.BooleanField(required=False, label="Leave out flagged responses")
    exclude_gold = forms.BooleanField(required=False, label="Leave out gold tasks")
    annotators = forms.CharField(required=False, help_text="Usernames separated by commas; empty: everyone.")
    since = forms.CharField(required=False, help_text="ISO date-time, e.g. 2025-01-31T00:00; empty: from the start.")
    until = forms.CharField(required=False, help_text="ISO date-time; empty: until now.")
    desirable_tiers = forms.IntegerField(required=False, initial=1, label="Desirable tiers (unpaired)")
    undesirable_tiers = forms.IntegerField(required=False, initial=1, label="Undesirable tiers (unpaired)")

    def options(self) -> dict[str, Any]:
        """The filled-in fields as the service's options (empty fields keep the service's defaults)."""
        data = self.cleaned_data
        options: dict[str, Any] = {}
        for name, value in data.items():
            if name == "annotators":
                names = [part.strip() for part in (value or "").split(",") if part.strip()]
                if names:
                    options["annotators"] = names
            elif isinstance(value, bool) or value not in (None, ""):
                options[name] = value
        return options

    def add_service_errors(self, fields: dict[str, Any], message: str) -> None:
        """Show the service's field errors beside the fields (unknown names as form errors)."""
        if not fields:
            self.add_error(None, message)
        for name, problems in fields.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                self.add_error(name if name in self.fields else None, f"{name}: {problem}" if name not in self.fields else str(problem))
