"""Webhooks: endpoints that other systems register to hear about a project's events.

The rules (docs/webhooks.md is the user's version):
- Registering: admins only; `url` is http(s) without credentials, and every address its host
  resolves to must be public (not loopback, private, link-local, multicast, reserved, unspecified
  or otherwise not globally routable; IPv4-mapped, 6to4 and NAT64 IPv6 addresses are judged by
  the IPv4 address inside) unless settings.WEBHOOK_ALLOW_PRIVATE. `events` is a non-empty list of
  WebhookEvent values. `secret` (16-200 characters) is generated when omitted and shown once.
- Emitting: webhook_events_emit() is called by the service that makes the state change, inside
  its transaction. It records one WebhookDelivery per subscribed webhook and sends the delivery
  task after the commit, so a rolled-back change sends nothing and the request does no network
  work. An event reaches a webhook at most once (a unique constraint on the delivery).
- Delivering: a Celery task (queue default) POSTs the stored body, signed with
  `X-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`. The host is resolved again and
  checked at delivery time, and the connection goes to the very address that was checked (so a
  DNS answer that changes in between cannot point it elsewhere); redirects are not followed.
  Anything but a 2xx answer (an error status, a redirect, a timeout, a refused connection, a
  refused address) is a failed attempt, retried with exponential backoff up to
  settings.WEBHOOK_MAX_ATTEMPTS attempts; then the delivery is failed.
- At least once: an attempt is claimed with a conditional update (healthchecks-style), so a
  redelivered message never sends twice while the attempt is live; a worker killed mid-attempt
  leaves a pending delivery that webhook_deliveries_resume() (celery beat, every minute) sends
  again. Receivers deduplicate on the X-Webhook-Delivery header.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from annotation.dispatch import DispatchError, TaskName, send_now, tasks_run_in_process
from annotation.errors import ApplicationError, NotFound
from annotation.limits import BIGINT_MAX
from annotation.models import DeliveryStatus, Project, Webhook, WebhookDelivery, WebhookEvent
from annotation.sql import webhooks as sql

logger = logging.getLogger(__name__)

EVENTS: tuple[str, ...] = tuple(WebhookEvent.values)
MAX_URL_LENGTH = 2000
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 200
MAX_WEBHOOKS_PER_PROJECT = 20  # bounds the fan-out an event costs the transaction that emits it
WEBHOOK_FIELDS = ("url", "events", "secret")
USER_AGENT = "annotation-platform-webhooks/1"
RESPONSE_SNIPPET_BYTES = 200  # of an error answer, kept in last_error; the rest is not read
EARLY_TOLERANCE_SECONDS = 2.0  # a retry message may fire a little before its countdown runs out
RESUME_GRACE_SECONDS = 60.0  # the sweep leaves a due delivery this long to its own message first


# --------------------------------------------------------------------------------------------
# Addresses


class AddressRefused(Exception):
    """The URL's host is, or resolves to, an address webhooks may not reach."""


def address_problem(address: str) -> str | None:
    """Why webhooks may not reach this IP address ("loopback", "private", ...), or None when public.

    IPv6 addresses that carry an IPv4 address (IPv4-mapped ::ffff:a.b.c.d, 6to4 2002::/16, NAT64
    64:ff9b::/96) are judged by the IPv4 address they lead to.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif ip in ipaddress.IPv6Network("64:ff9b::/96"):
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    for attribute, kind in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(ip, attribute):
            return kind
    if not ip.is_global:  # shared (100.64/10), documentation, benchmarking ranges, ...
        return "non-public"
    return None


def _resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself), in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressRefused(f"{host} does not resolve ({exc})") from exc
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    if not seen:
        raise AddressRefused(f"{host} does not resolve")
    return seen


def _checked_addresses(host: str, port: int) -> list[str]:
    """The addresses to connect to: all of them public, unless WEBHOOK_ALLOW_PRIVATE. AddressRefused otherwise."""
    addresses = _resolve(host, port)
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            kind = address_problem(address)
            if kind is not None:
                shown = host if host == address else f"{host} resolves to {address}, which"
                raise AddressRefused(f"{shown} is a {kind} address; webhooks only reach public addresses "
                                     "(WEBHOOK_ALLOW_PRIVATE=1 allows others)")
    return addresses


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # as written (no brackets), for DNS, SNI and certificate checks
    port: int
    netloc: str  # the Host header
    path_and_query: tuple[str, str]


def _parse_url(url: Any) -> _Target:
    """The parts of a well-formed webhook URL; ApplicationError naming `url` otherwise."""

    def bad(message: str) -> ApplicationError:
        return ApplicationError(f"Invalid webhook URL: {message}.", fields={"url": [message]})

    if not isinstance(url, str) or not url.strip():
        raise bad("must be a non-empty string")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise bad(f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise bad(f"not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise bad("the scheme must be http or https")
    if not parts.hostname:
        raise bad("it has no host")
    if parts.username is not None or parts.password is not None:
        raise bad("credentials in the URL are not accepted (the secret signs each request)")
    if any(ch.isspace() for ch in url):
        raise bad("it contains whitespace")
    default_port = 443 if parts.scheme == "https" else 80
    return _Target(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or default_port,
        netloc=parts.netloc,
        path_and_query=(parts.path or "/", parts.query),
    )


def webhook_url_validate(*, url: Any) -> str:
    """The URL, stripped, if webhooks may call it; ApplicationError naming `url` otherwise (it resolves the host)."""
    target = _parse_url(url)
    try:
        _checked_addresses(target.host, target.port)
    except AddressRefused as exc:
        raise ApplicationError(f"Webhook URL refused: {exc}.", fields={"url": [str(exc)]}) from exc
    return url.strip()


# --------------------------------------------------------------------------------------------
# Registering


def webhook_secret_mask(secret: str) -> str:
    """What the API shows of a secret after creation: nothing of it."""
    return "********" if secret else ""


def _events_validate(events: Any) -> list[str]:
    if not isinstance(events, list) or not events:
        raise ApplicationError("Invalid webhook events.", fields={"events": [f"must be a non-empty list of: {', '.join(EVENTS)}"]})
    problems = []
    for value in events:
        if not isinstance(value, str) or value not in EVENTS:
            problems.append(f"unknown event {value!r}; known: {', '.join(EVENTS)}")
    if problems:
        raise ApplicationError("Invalid webhook events.", fields={"events": problems})
    return [event for event in EVENTS if event in set(events)]  # canonical order, no duplicates


def _secret_validate(secret: Any) -> str:
    if secret is None:
        return secrets.token_hex(32)
    if not isinstance(secret, str) or not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        raise ApplicationError(
            "Invalid webhook secret.",
            fields={"secret": [f"must be a string of {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters "
                               "(omit it to get one generated)"]},
        )
    return secret


def webhook_create(*, project: Project, data: Any, created_by: AbstractBaseUser | None = None) -> Webhook:
    """Register a webhook from the caller's fields (url, events, optional secret).

    The returned row carries the secret (generated when none was given), for the one answer that
    shows it. Raises ApplicationError naming each bad or unknown field; nothing is stored then.
    """
    if not isinstance(data, dict):
        raise ApplicationError("The body must be a JSON object with url, events and secret.",
                               fields={"non_field_errors": ["not an object"]})
    unknown = sorted(set(data) - set(WEBHOOK_FIELDS))
    if unknown:
        raise ApplicationError(f"Unknown field(s): {', '.join(unknown)}.", fields={name: ["unknown field"] for name in unknown})
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    for name, check in (("events", _events_validate), ("secret", _secret_validate)):
        try:
            values[name] = check(data.get(name))
        except ApplicationError as exc:
            errors.update(exc.fields)
    # The URL last: its check resolves the host, which is not worth doing for an otherwise bad body.
    if "url" not in data:
        errors["url"] = ["required"]
    elif not errors:
        try:
            values["url"] = webhook_url_validate(url=data["url"])
        except ApplicationError as exc:
            errors.update(exc.fields)
    else:
        try:
            _parse_url(data["url"])
        except ApplicationError as exc:
            errors.update(exc.fields)
    if errors:
        raise ApplicationError(f"Invalid webhook: {', '.join(errors)}.", fields=errors)
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()  # serialises the count below
        if Webhook.objects.filter(project=project).count() >= MAX_WEBHOOKS_PER_PROJECT:
            raise ApplicationError(
                f"A project has at most {MAX_WEBHOOKS_PER_PROJECT} webhooks; delete one first.",
                fields={"url": [f"project already has {MAX_WEBHOOKS_PER_PROJECT} webhooks"]},
            )
        return Webhook.objects.create(
            project=project,
            url=values["url"],
            events=values["events"],
            secret=values["secret"],
            created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
        )


def webhooks_of_project(*, project: Project) -> QuerySet[Webhook]:
    return Webhook.objects.filter(project=project).select_related("project", "created_by").order_by("id")


def webhook_get(*, project: Project, webhook_id: Any) -> Webhook:
    """The project's webhook; another project's (or none) is NotFound. Check the caller's role on `project` first."""
    if not str(webhook_id).isascii() or not str(webhook_id).isdigit() or int(webhook_id) > BIGINT_MAX:
        raise NotFound("Webhook not found.")
    webhook = webhooks_of_project(project=project).filter(pk=int(webhook_id)).first()
    if webhook is None:
        raise NotFound("Webhook not found.")
    return webhook


@transaction.atomic
def webhook_delete(*, webhook: Webhook) -> None:
    """Remove the webhook and its deliveries; a pending delivery's next attempt finds nothing and stops."""
    webhook.delete()


def webhook_deliveries_of(*, webhook: Webhook, status: Any = None) -> QuerySet[WebhookDelivery]:
    """The webhook's deliveries, newest first, optionally only those with `status`."""
    rows = WebhookDelivery.objects.filter(webhook=webhook).order_by("-id")
    if status is not None and status != "":
        if status not in DeliveryStatus.values:
            raise ApplicationError("Invalid status filter.", fields={"status": [f"must be one of {', '.join(DeliveryStatus.values)}"]})
        rows = rows.filter(status=status)
    return rows


# --------------------------------------------------------------------------------------------
# Emitting


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook_body(*, event: str, project_id: int, project_slug: str, object_id: int, created_at: datetime,
                 data: dict[str, Any] | None = None) -> str:
    """The JSON body of an event, as it is stored, signed and sent (compact, keys sorted)."""
    payload = {
        **(data or {}),
        "event": event,
        "project": {"id": project_id, "slug": project_slug},
        "object_type": event.split(".", 1)[0],
        "object_id": object_id,
        "created_at": _timestamp(created_at),
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def webhook_events_emit(*, project_id: int, event: str, object_id: int, data: dict[str, Any] | None = None,
                        now: datetime | None = None) -> list[int]:
    """Record `event` about object `object_id` for every webhook of the project that subscribes to it.

    Call it inside the transaction that makes the state change (it refuses to run outside one):
    the deliveries commit or roll back with the change, and their task is sent only after the
    commit. No network work happens here. An event already recorded for a webhook (the same event
    and object, emitted again or concurrently) is not recorded twice. `data` adds fields to the
    body (such as the object's final `status`). Returns the ids of the deliveries recorded.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    if not connection.in_atomic_block:
        raise RuntimeError("webhook_events_emit must run inside the transaction of the state change it reports")
    # Raw SQL (annotation.sql.webhooks): this runs in the annotators' submit transaction, where
    # compiling the ORM query costs more than running it.
    hooks = [(hook_id, slug) for hook_id, events, slug in sql.hooks_of_project(project_id=project_id) if event in events]
    if not hooks:
        return []
    now = now or timezone.now()
    body = webhook_body(event=event, project_id=project_id, project_slug=hooks[0][1], object_id=object_id,
                        created_at=now, data=data)
    ids = sql.deliveries_insert(webhook_ids=[hook_id for hook_id, _slug in hooks], event=event,
                                object_type=event.split(".", 1)[0], object_id=object_id, body=body,
                                status=DeliveryStatus.PENDING.value, now=now)
    if ids:
        transaction.on_commit(partial(_send_deliveries, ids))
    return ids


def _send_deliveries(delivery_ids: list[int]) -> None:
    """After the commit: one task message per delivery; without a broker, a background thread.

    Never raises: the change has committed, and a webhook must not fail the request that made it.
    A delivery whose message was not sent stays pending; webhook_deliveries_resume sends it later.
    """
    try:
        if tasks_run_in_process():
            # No broker (the demo, most tests): running the task here would make the request wait
            # for the receiver and every retry, so a daemon thread delivers instead (hand-written:
            # no Celery worker exists in this mode). A process that exits leaves the rest pending.
            threading.Thread(target=_deliver_in_thread, args=(delivery_ids,), name="webhook-deliveries", daemon=True).start()
            return
        for delivery_id in delivery_ids:
            send_now(TaskName.WEBHOOK_DELIVER, args=[delivery_id])
    except DispatchError as exc:
        logger.error("webhook deliveries %s not enqueued: %s", delivery_ids, exc)
    except Exception:  # anything else the broker client raises: logged, never the request's failure
        logger.exception("webhook deliveries %s not enqueued", delivery_ids)


def _deliver_in_thread(delivery_ids: list[int]) -> None:
    try:
        for delivery_id in delivery_ids:
            while (wait := webhook_delivery_attempt(delivery_id=delivery_id).retry_in) is not None:
                time.sleep(wait)
    except Exception:
        logger.exception("webhook deliveries %s", delivery_ids)
    finally:
        connection.close()


# --------------------------------------------------------------------------------------------
# Delivering


def webhook_signature(*, secret: str, body: bytes) -> str:
    """The X-Signature-256 header value: "sha256=" and the hex HMAC-SHA256 of the body with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_retry_delay(*, attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: WEBHOOK_RETRY_BASE_SECONDS doubled per attempt made, plus up to 25% jitter."""
    base = settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)
    return base * random.uniform(1.0, 1.25)  # noqa: S311  (jitter, not security)


def _attempt_lease_seconds() -> float:
    # Longer than any one attempt can take (connect, write and read each have the timeout), so a
    # redelivered message does not start a second attempt while the first is still running.
    return 4 * settings.WEBHOOK_TIMEOUT_SECONDS + 30


@dataclass
class AttemptOutcome:
    status: str  # the delivery's status afterwards, or "skipped" when this call made no attempt
    retry_in: float | None = None  # seconds until the next attempt is due, when there is one


def _post(*, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """POST to the URL's host at an address checked now; (HTTP status, "") or (status or None, error)."""
    try:
        target = _parse_url(url)
        addresses = _checked_addresses(target.host, target.port)
    except (ApplicationError, AddressRefused) as exc:
        return None, f"refused: {exc.message if isinstance(exc, ApplicationError) else exc}"
    # Imported here: httpx (with its command-line tool's rich) costs every process that merely emits events
    # (an export's, a web worker's) about 5 MB and 90 ms; only the delivering worker needs it.
    import httpx

    timeout = httpx.Timeout(settings.WEBHOOK_TIMEOUT_SECONDS)
    error = ""
    # trust_env=False: no proxy from the environment may carry the request somewhere unchecked.
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for address in addresses:
            literal = f"[{address}]" if ":" in address else address
            pinned = urlunsplit((target.scheme, f"{literal}:{target.port}", *target.path_and_query, ""))
            extensions = {} if target.host == address else {"sni_hostname": target.host}
            try:
                with client.stream("POST", pinned, content=body, headers={**headers, "Host": target.netloc},
                                   extensions=extensions) as response:
                    if 200 <= response.status_code < 300:
                        return response.status_code, ""
                    snippet = b""
                    for chunk in response.iter_bytes():
                        snippet += chunk
                        if len(snippet) >= RESPONSE_SNIPPET_BYTES:
                            break
                    text = snippet[:RESPONSE_SNIPPET_BYTES].decode(errors="replace").strip()
                    note = " (redirects are not followed)" if 300 <= response.status_code < 400 else ""
                    return response.status_code, f"HTTP {response.status_code}{note}" + (f": {text}" if text else "")
            except httpx.TimeoutException as exc:
                return None, f"timed out after {settings.WEBHOOK_TIMEOUT_SECONDS:g} s ({type(exc).__name__})"
            except httpx.ConnectError as exc:
                error = f"could not connect to {address}: {exc}"  # try the host's next address
            except httpx.HTTPError as exc:
                return None, f"{type(exc).__name__}: {exc}"
    return None, error


def webhook_delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> AttemptOutcome:
    """Make the delivery's next attempt if it is due; record its outcome.

    Idempotent: the attempt is claimed with a conditional update (pending and due), so a second
    message for the same delivery makes no attempt while one is live or before the next is due.
    """
    now = now or timezone.now()
    lease_until = now + timedelta(seconds=_attempt_lease_seconds())
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING,
        next_attempt_at__lte=now + timedelta(seconds=EARLY_TOLERANCE_SECONDS),
    ).update(attempts=F("attempts") + 1, last_attempt_at=now, next_attempt_at=lease_until)
    if claimed != 1:
        return AttemptOutcome(status="skipped")
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None:  # the webhook was deleted meanwhile
        return AttemptOutcome(status="skipped")
    raw = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Event": delivery.event,
        "X-Webhook-Delivery": str(delivery.pk),
        "X-Signature-256": webhook_signature(secret=delivery.webhook.secret, body=raw),
    }
    status_code, error = _post(url=delivery.webhook.url, body=raw, headers=headers)
    done = max(now, timezone.now())  # `now` may be ahead of the clock (a caller simulating time passing)
    mine = WebhookDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts, status=DeliveryStatus.PENDING)
    if not error:
        mine.update(status=DeliveryStatus.DELIVERED, last_status_code=status_code, last_error="",
                    next_attempt_at=None, finished_at=done)
        return AttemptOutcome(status=DeliveryStatus.DELIVERED)
    logger.info("webhook delivery %s attempt %s failed: %s", delivery.pk, delivery.attempts, error)
    if delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        mine.update(status=DeliveryStatus.FAILED, last_status_code=status_code, last_error=error[:2000],
                    next_attempt_at=None, finished_at=done)
        return AttemptOutcome(status=DeliveryStatus.FAILED)
    delay = webhook_retry_delay(attempts=delivery.attempts)
    mine.update(last_status_code=status_code, last_error=error[:2000], next_attempt_at=done + timedelta(seconds=delay))
    return AttemptOutcome(status=DeliveryStatus.PENDING, retry_in=delay)


def webhook_deliveries_resume(*, now: datetime | None = None, limit: int = 500) -> int:
    """Send again the pending deliveries whose attempt is overdue (a lost message, a killed worker,
    a broker that was down after the commit). Run periodically by celery beat; returns how many."""
    now = now or timezone.now()
    overdue = list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING,
                                       next_attempt_at__lte=now - timedelta(seconds=RESUME_GRACE_SECONDS))
        .order_by("next_attempt_at").values_list("id", flat=True)[:limit]
    )
    for delivery_id in overdue:
        try:
            send_now(TaskName.WEBHOOK_DELIVER, args=[delivery_id])
        except DispatchError as exc:
            logger.error("webhook deliveries not resumed: %s", exc)
            break
    return len(overdue)
