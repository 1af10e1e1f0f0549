"""Counting and timing AWS API calls through botocore's event system, and HTTP calls to one host.

Hooks go on botocore's events rather than on HTTP, so the same counts come out under `mock_aws` (which answers
before anything is sent) and against moto's server. Clients copy their session's event emitter when they are
created, so `install()` registers on every live session and client once and adds the hooks to botocore's
built-in handlers for sessions made later. The hooks do nothing unless a recording is open on the calling
thread, so leaving them installed costs a dictionary lookup per call.

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

import boto3.session
import botocore.handlers
import botocore.session
import urllib3
import urllib3.connectionpool
from botocore.client import BaseClient

# Keys this module stores in botocore's per-call request context, which botocore passes to every event of a call.
_STARTED = "bench.started"
_OPERATION = "bench.operation"
_PARAMS = "bench.params"
# The first event of a call (before validation and serialisation) and the last ones, so the measured
# time is everything botocore does for the call: serialising, signing, sending, retries, parsing.
_START_EVENT = "provide-client-params"
_COUNT_EVENT = "before-call"
_END_EVENT = "after-call"
_ERROR_EVENT = "after-call-error"
_RECORDED_OPERATIONS_WITH_RESPONSE = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})


@dataclass(frozen=True)
class CallRecord:
    """One API call as botocore made it; params and response are kept only when the recording asks for them."""

    operation: str
    seconds: float
    params: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class CallLog:
    """What one recording saw on its thread: calls by `Service.Operation`, and the time spent inside botocore."""

    keep_details: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    records: list[CallRecord] = field(default_factory=list)


_local = threading.local()
_install_lock = threading.Lock()
_installed = False


def _open_logs() -> list[CallLog]:
    logs: list[CallLog] | None = getattr(_local, "logs", None)
    if logs is None:
        logs = []
        _local.logs = logs
    return logs


def _operation_name(model: Any) -> str:
    return f"{model.service_model.service_id}.{model.name}"


def _on_start(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    if not _open_logs():
        return
    context[_STARTED] = time.perf_counter()
    context[_OPERATION] = _operation_name(model)
    context[_PARAMS] = params


def _on_count(model: Any, context: dict[str, Any], **_: Any) -> None:
    # Counted here, once per API call: `before-send` would count each retry attempt as a call.
    for log in _open_logs():
        log.counts[_operation_name(model)] += 1


def _finish(context: dict[str, Any], response: dict[str, Any] | None, error: str | None) -> None:
    started = context.pop(_STARTED, None)
    operation = context.pop(_OPERATION, None)
    params = context.pop(_PARAMS, None)
    logs = _open_logs()
    if started is None or operation is None or not logs:
        return
    elapsed = time.perf_counter() - started
    for log in logs:
        log.seconds += elapsed
        if log.keep_details:
            kept = response if operation.rsplit(".", 1)[-1] in _RECORDED_OPERATIONS_WITH_RESPONSE else None
            log.records.append(CallRecord(operation, elapsed, params, kept, error))


def _on_end(parsed: dict[str, Any], context: dict[str, Any], http_response: Any, **_: Any) -> None:
    error = None
    if http_response is not None and http_response.status_code >= 300:
        error = (parsed or {}).get("Error", {}).get("Code") or str(http_response.status_code)
    _finish(context, parsed, error)


def _on_error(exception: Exception, context: dict[str, Any], **_: Any) -> None:
    _finish(context, None, type(exception).__name__)


_HOOKS: tuple[tuple[str, Callable[..., None]], ...] = (
    (_START_EVENT, _on_start),
    (_COUNT_EVENT, _on_count),
    (_END_EVENT, _on_end),
    (_ERROR_EVENT, _on_error),
)


def _register(emitter: Any) -> None:
    for event, hook in _HOOKS:
        # unique_id makes a second registration on the same emitter (or on a copy of it) a no-op.
        emitter.register(event, hook, unique_id=f"bench-calls-{event}")


def install() -> None:
    """Puts the hooks on every botocore session and client alive now and on those created later; idempotent."""
    global _installed
    with _install_lock:
        if _installed:
            return
        for candidate in gc.get_objects():
            # type() rather than isinstance: proxies (werkzeug's, for one) raise when asked for __class__.
            kind = type(candidate)
            if issubclass(kind, botocore.session.Session):
                _register(candidate.get_component("event_emitter"))
            elif issubclass(kind, BaseClient):
                _register(candidate.meta.events)
        # Sessions read this list when they are created; each client then copies its session's emitter.
        botocore.handlers.BUILTIN_HANDLERS.extend(_HOOKS)
        _installed = True


@contextmanager
def recording(keep_details: bool = False) -> Iterator[CallLog]:
    """Records the AWS calls this thread makes inside the block (calls from other threads are not counted)."""
    install()
    log = CallLog(keep_details=keep_details)
    logs = _open_logs()
    logs.append(log)
    try:
        yield log
    finally:
        logs.remove(log)


def count_calls(flow: Callable[[], Any]) -> Counter[str]:
    """Runs `flow` and returns its AWS API calls by operation, e.g. {"DynamoDB.TransactWriteItems": 1}."""
    with recording() as log:
        flow()
    return log.counts


# --- HTTP calls to one host (WAHA) ---------------------------------------------------------------------------


@dataclass
class HttpLog:
    """Requests this thread sent to one host:port, by method and path, and the time spent waiting for them."""

    host: str
    port: int
    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


_http_patch_lock = threading.Lock()
_original_urlopen: Callable[..., Any] | None = None


def _open_http_logs() -> list[HttpLog]:
    logs: list[HttpLog] | None = getattr(_local, "http_logs", None)
    if logs is None:
        logs = []
        _local.http_logs = logs
    return logs


def _install_http_hook() -> None:
    """Wraps urllib3's connection-pool urlopen once: every PoolManager request ends up there, whoever made the pool."""
    global _original_urlopen
    with _http_patch_lock:
        if _original_urlopen is not None:
            return
        original = urllib3.connectionpool.HTTPConnectionPool.urlopen
        _original_urlopen = original

        def urlopen(
            pool: urllib3.connectionpool.HTTPConnectionPool, method: str, url: str, *args: Any, **kwargs: Any
        ) -> Any:
            logs = [log for log in _open_http_logs() if log.host == pool.host and log.port == pool.port]
            if not logs:
                return original(pool, method, url, *args, **kwargs)
            started = time.perf_counter()
            try:
                return original(pool, method, url, *args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                for log in logs:
                    log.counts[f"{method} {url.split('?', 1)[0]}"] += 1
                    log.seconds += elapsed

        urllib3.connectionpool.HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]


@contextmanager
def http_recording(base_url: str) -> Iterator[HttpLog]:
    """Records this thread's HTTP requests to the host and port of base_url (e.g. the WAHA simulator)."""
    _install_http_hook()
    parsed = urllib3.util.parse_url(base_url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    log = HttpLog(host=parsed.host or "", port=port)
    logs = _open_http_logs()
    logs.append(log)
    try:
        yield log
    finally:
        logs.remove(log)


# --- Clients and connection pools created --------------------------------------------------------------------


@dataclass
class CreationLog:
    """AWS clients, boto3 sessions and urllib3 PoolManagers created by the thread that opened the count.

    Other threads (moto's server, the WAHA simulator) are tallied apart, so the check stays about the handlers."""

    clients: Counter[str] = field(default_factory=Counter)
    sessions: int = 0
    pool_managers: int = 0
    other_threads: int = 0

    @property
    def total(self) -> int:
        return sum(self.clients.values()) + self.sessions + self.pool_managers


@contextmanager
def counting_creations() -> Iterator[CreationLog]:
    """Counts BaseClient, boto3 Session and urllib3 PoolManager constructions inside the block.

    Patches the constructors for the block's duration; botocore's own HTTP layer builds a PoolManager per
    client, so a client made per invocation shows up twice (client and pool)."""
    log = CreationLog()
    owner = threading.get_ident()
    originals = (BaseClient.__init__, boto3.session.Session.__init__, urllib3.PoolManager.__init__)
    client_init, session_init, pool_init = originals

    def ours() -> bool:
        if threading.get_ident() == owner:
            return True
        log.other_threads += 1
        return False

    def counted_client(self: BaseClient, *args: Any, **kwargs: Any) -> None:
        client_init(self, *args, **kwargs)
        if ours():
            log.clients[self.meta.service_model.service_id] += 1

    def counted_session(self: boto3.session.Session, *args: Any, **kwargs: Any) -> None:
        if ours():
            log.sessions += 1
        session_init(self, *args, **kwargs)

    def counted_pool(self: urllib3.PoolManager, *args: Any, **kwargs: Any) -> None:
        if ours():
            log.pool_managers += 1
        pool_init(self, *args, **kwargs)

    BaseClient.__init__ = counted_client  # type: ignore[method-assign]
    boto3.session.Session.__init__ = counted_session  # type: ignore[method-assign]
    urllib3.PoolManager.__init__ = counted_pool  # type: ignore[method-assign]
    try:
        yield log
    finally:
        BaseClient.__init__, boto3.session.Session.__init__, urllib3.PoolManager.__init__ = originals  # type: ignore[method-assign]
