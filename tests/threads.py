"""Run a function in many threads at once, each on its own database connection, failing on any error."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from django.db import connection


def run_threads(target: Callable[..., object], args_list: Iterable[tuple]) -> None:
    errors: list[BaseException] = []

    def wrapped(*args):
        try:
            target(*args)
        except BaseException as exc:  # reported below, so a thread's failure fails the test
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection; leave none open

    threads = [threading.Thread(target=wrapped, args=args) for args in args_list]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors[:3]
