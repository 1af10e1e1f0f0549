"""Counting and timing AWS calls (and clients created) through botocore's events, and HTTP calls to one host.

Hooks sit on botocore's events rather than on HTTP, so the same counts come out under `mock_aws` (which answers
before anything is sent) and against moto's server. They do nothing unless a recording is open on the calling
thread (moto's and the simulator's threads are never counted).

    counts = count_calls(lambda: handler(event, context))
    assert counts == Counter({"DynamoDB.TransactWriteItems": 1, "SQS.SendMessage": 1})
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.handlers
import botocore.session
import urllib3
from botocore.client import BaseClient

# Reads whose answers the cost model sizes (bench.capacity).
_KEEP_RESPONSE = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})
_local = threading.local()
_lock = threading.Lock()


@dataclass(frozen=True)
class CallRecord:
    operation: str
    seconds: float
    params: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    error: str | None = None


@dataclass(eq=False)  # removed from the open recordings by identity
class CallLog:
    """Calls by `Service.Operation`, the time inside botocore (serialising, signing, sending, retries, parsing),
    and with keep_details each call's parameters and, for reads, its answer."""

    keep_details: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    records: list[CallRecord] = field(default_factory=list)
    clients_created: int = 0


def _logs(name: str = "logs") -> list[Any]:
    if not hasattr(_local, name):
        setattr(_local, name, [])
    return getattr(_local, name)


def _operation(model: Any) -> str:
    return f"{model.service_model.service_id}.{model.name}"


def _on_start(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    if _logs():
        context["bench"] = (time.perf_counter(), _operation(model), params)


def _on_count(model: Any, **_: Any) -> None:
    # Once per API call: `before-send` would count each retry as a call.
    for log in _logs():
        log.counts[_operation(model)] += 1


def _finish(context: dict[str, Any], response: dict[str, Any] | None, error: str | None) -> None:
    started, operation, params = context.pop("bench", (None, "", None))
    if started is None:
        return
    elapsed = time.perf_counter() - started
    for log in _logs():
        log.seconds += elapsed
        if log.keep_details:
            kept = response if operation.rsplit(".", 1)[-1] in _KEEP_RESPONSE else None
            log.records.append(CallRecord(operation, elapsed, params, kept, error))


def _on_end(parsed: dict[str, Any], context: dict[str, Any], http_response: Any, **_: Any) -> None:
    failed = http_response is not None and http_response.status_code >= 300
    error = ((parsed or {}).get("Error", {}).get("Code") or str(http_response.status_code)) if failed else None
    _finish(context, parsed, error)


def _on_error(exception: Exception, context: dict[str, Any], **_: Any) -> None:
    _finish(context, None, type(exception).__name__)


def _on_client(**_: Any) -> None:
    for log in _logs():
        log.clients_created += 1


_HOOKS = (
    ("provide-client-params", _on_start),
    ("before-call", _on_count),
    ("after-call", _on_end),
    ("after-call-error", _on_error),
    ("creating-client-class", _on_client),
)


def install() -> None:
    """Puts the hooks on every botocore session and client alive now and on those created later; idempotent."""
    with _lock:
        if getattr(install, "done", False):
            return
        for candidate in gc.get_objects():
            kind = type(candidate)  # not isinstance: some proxies raise when asked for __class__
            emitter = None
            if issubclass(kind, botocore.session.Session):
                emitter = candidate.get_component("event_emitter")
            elif issubclass(kind, BaseClient):
                emitter = candidate.meta.events
            for event, hook in _HOOKS if emitter else ():
                emitter.register(event, hook, unique_id=f"bench-calls-{event}")
        # Sessions read this list when they are created; each client copies its session's emitter.
        botocore.handlers.BUILTIN_HANDLERS.extend(_HOOKS)
        install.done = True  # type: ignore[attr-defined]


@contextmanager
def recording(keep_details: bool = False) -> Iterator[CallLog]:
    """Records the AWS calls this thread makes inside the block."""
    install()
    log = CallLog(keep_details=keep_details)
    _logs().append(log)
    try:
        yield log
    finally:
        _logs().remove(log)


def count_calls(flow: Callable[[], Any]) -> Counter[str]:
    """Runs `flow` and returns its AWS API calls by operation, e.g. {"DynamoDB.TransactWriteItems": 1}."""
    with recording() as log:
        flow()
    return log.counts


@dataclass(eq=False)
class HttpLog:
    """Requests this thread sent to one host:port, and the time spent waiting for them."""

    host: str
    port: int
    total: int = 0
    seconds: float = 0.0


def _install_http_hook() -> None:
    """Wraps urllib3's connection-pool urlopen once: every PoolManager request ends up there."""
    pool_class = urllib3.connectionpool.HTTPConnectionPool
    with _lock:
        if getattr(pool_class.urlopen, "bench_counts", False):
            return
        original = pool_class.urlopen

        def urlopen(pool: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            logs = [log for log in _logs("http") if (log.host, log.port) == (pool.host, pool.port)]
            started = time.perf_counter()
            try:
                return original(pool, method, url, *args, **kwargs)
            finally:
                for log in logs:
                    log.total += 1
                    log.seconds += time.perf_counter() - started

        urlopen.bench_counts = True  # type: ignore[attr-defined]
        pool_class.urlopen = urlopen  # type: ignore[method-assign]


@contextmanager
def http_recording(base_url: str) -> Iterator[HttpLog]:
    """Records this thread's HTTP requests to the host and port of base_url (e.g. the WAHA simulator)."""
    _install_http_hook()
    parsed = urllib3.util.parse_url(base_url)
    log = HttpLog(parsed.host or "", parsed.port or (443 if parsed.scheme == "https" else 80))
    _logs("http").append(log)
    try:
        yield log
    finally:
        _logs("http").remove(log)
