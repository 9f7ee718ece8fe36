"""One producer thread a bounded number of items ahead of its consumer (the import's parsing, the export's reading).

psycopg releases the GIL while it waits on the server, so a thread that reads or parses while
the caller talks to PostgreSQL (or the other way round) lets client and server CPU overlap on a
two-core machine. At most `depth` items wait at a time, so memory stays flat. An exception in
the producer is raised in the consumer; leaving the consumer's loop early (or closing it) stops
the producer. Written by hand: the standard library has the queue and the thread, not the
stop-and-hand-over-errors protocol around them.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def read_ahead(make_iterator: Callable[[], Iterator[T]], *, depth: int, name: str,
               on_thread_exit: Callable[[], None] | None = None) -> Iterator[T]:
    """The items of `make_iterator()`, produced by a thread at most `depth` items ahead.

    `on_thread_exit` runs in the producer thread when it ends (for example to close the database
    connections it opened)."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in make_iterator():
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put(_Failure(exc))
        finally:
            if on_thread_exit is not None:
                on_thread_exit()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()
