"""A ranking in the form agreement loads in bulk: rank and display vectors in ascending response id order.

Written at submit time (annotation.services.ranking) beside `tiers`, read by
annotation.services.agreement.rank_data_load as one concatenated byte string per column, so a
refresh never decodes JSON row by row (docs/agreement.md, "Loading from the database").
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from annotation.services.consensus import tiers_to_ranks

RANK_DTYPE = np.dtype("<f4")  # ranks are n/2 for whole n <= 2K: exact in float32
DISPLAY_DTYPE = np.dtype("<i2")


def ranking_vectors(*, tiers: Sequence[Sequence[int]], display_order: Sequence[int]) -> tuple[bytes, bytes]:
    """(rank vector, display vector) of a ranking of real response ids shown in `display_order`.

    The columns are the task's responses in ascending id order (every ranking of a task shows the
    same responses, so its columns line up); a response the tiers do not name gets rank NaN.
    """
    ranks = tiers_to_ranks([list(tier) for tier in tiers])
    slots = sorted(int(r) for r in display_order)
    position = {int(r): i for i, r in enumerate(display_order)}
    rank_vector = np.array([ranks.get(r, np.nan) for r in slots], dtype=RANK_DTYPE)
    display_vector = np.array([position[r] for r in slots], dtype=DISPLAY_DTYPE)
    return rank_vector.tobytes(), display_vector.tobytes()
