"""Production settings pass Django's deployment checklist."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _check_deploy(extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "CACHE_URL"}}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", **extra_env})
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = _check_deploy({"SECRET_KEY": secrets.token_urlsafe(50), "CACHE_URL": "redis://127.0.0.1:6379/1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_when_the_cache_is_not_shared_between_workers():
    # Throttles and login lockouts in a per-process memory cache would let each gunicorn worker
    # count apart: production must set CACHE_URL (Redis).
    result = _check_deploy({"SECRET_KEY": secrets.token_urlsafe(50)})
    assert result.returncode != 0
    assert "axes.W001" in result.stderr + result.stdout


def test_check_deploy_fails_with_debug_on_and_no_secret_key():
    # The check can fail: the same command flags a development configuration.
    result = _check_deploy({"DEBUG": "1"})
    assert result.returncode != 0
    assert "security.W018" in result.stderr + result.stdout  # DEBUG on
    assert "security.W009" in result.stderr + result.stdout  # weak SECRET_KEY
