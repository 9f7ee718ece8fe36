"""The import's read-ahead thread (services/importing._read_ahead): every record in order, errors raised to the caller,
and no thread left behind when the caller stops early."""
from __future__ import annotations

import contextlib
import threading

import pytest

from annotation.services.importing import _BATCH, _read_ahead


def _threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "import-read-ahead")


def test_every_record_arrives_in_order_in_bounded_batches():
    n = _BATCH * 3 + 7
    batches = list(_read_ahead(iter(range(n))))
    assert [x for batch in batches for x in batch] == list(range(n))
    assert max(len(batch) for batch in batches) == _BATCH
    assert _threads() == 0


def test_an_error_while_reading_reaches_the_caller():
    def records():
        yield from range(_BATCH + 1)
        raise UnicodeError("bad bytes")

    seen = []
    with pytest.raises(UnicodeError, match="bad bytes"):
        for batch in _read_ahead(records()):
            seen.extend(batch)
    assert seen == list(range(_BATCH))  # the full batch before the error, then the error
    assert _threads() == 0


def test_stopping_early_stops_the_thread():
    endless = iter(int, 1)  # never ends
    with contextlib.closing(_read_ahead(endless, batches=2)) as batches:
        assert len(next(batches)) == _BATCH
    assert _threads() == 0
