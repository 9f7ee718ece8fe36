"""Ranking.rank_vector and display_vector: what agreement needs, in a form that loads in bulk.

Existing rankings are filled from their tiers and their assignment's display order, in batches
(the same packing as annotation.services.ranking_stats, repeated here so the migration does not
depend on code that may change).
"""
import numpy as np
from django.db import migrations, models


def _ranks(tiers):
    ranks, position = {}, 1
    for tier in tiers:
        for item in tier:
            ranks[int(item)] = position + (len(tier) - 1) / 2
        position += len(tier)
    return ranks


def fill_vectors(apps, schema_editor):
    Ranking = apps.get_model("annotation", "Ranking")
    batch = []
    rows = Ranking.objects.filter(rank_vector__isnull=True).values_list("id", "tiers", "assignment__display_order")
    for ranking_id, tiers, display_order in rows.iterator(chunk_size=5000):
        if not display_order:
            continue
        ranks = _ranks(tiers or [])
        slots = sorted(int(r) for r in display_order)
        position = {int(r): i for i, r in enumerate(display_order)}
        batch.append(Ranking(
            id=ranking_id,
            rank_vector=np.array([ranks.get(r, np.nan) for r in slots], dtype="<f4").tobytes(),
            display_vector=np.array([position[r] for r in slots], dtype="<i2").tobytes(),
        ))
        if len(batch) >= 5000:
            Ranking.objects.bulk_update(batch, ["rank_vector", "display_vector"])
            batch = []
    if batch:
        Ranking.objects.bulk_update(batch, ["rank_vector", "display_vector"])


class Migration(migrations.Migration):
    dependencies = [("annotation", "0009_hardening")]

    operations = [
        migrations.AddField("ranking", "rank_vector", models.BinaryField(blank=True, editable=False, null=True)),
        migrations.AddField("ranking", "display_vector", models.BinaryField(blank=True, editable=False, null=True)),
        migrations.RunPython(fill_vectors, migrations.RunPython.noop),
    ]
