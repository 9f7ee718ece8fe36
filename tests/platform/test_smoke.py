import pytest
from django.conf import settings


@pytest.mark.needs_postgres
def test_suite_runs_on_postgresql_when_it_is_reachable(db):
    from django.db import connection

    assert connection.vendor == "postgresql"
    assert settings.POSTGRES_AVAILABLE
