"""API Gateway's request throttling, from the template: the stage's `MethodSettings` (per method, whoever calls) and
the usage plan's `Throttle` (per API key). Both are token buckets: `burst` requests at once, refilled at `rate` per
second. The usage plan's daily quota is not counted locally.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_ANY = "*"
_ANY_PATH = "/*"


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._refilled_at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """True when a request may pass now (and counts it), False when it is throttled."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._refilled_at) * self.rate)
            self._refilled_at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


def decode_resource_path(resource_path: str) -> str:
    """MethodSettings write a path as a JSON Pointer to it: "/" and the path with its slashes as ~1, so that
    /~1api~1v1 is /api/v1; "/" alone is the root and "/*" every resource."""
    if resource_path in ("/", _ANY_PATH):
        return resource_path
    return resource_path.removeprefix("/").replace("~1", "/")


@dataclass(frozen=True)
class _MethodLimit:
    path: str
    method: str
    rate: float
    burst: int

    def specificity(self, path: str, method: str) -> int | None:
        """How exactly this setting names the method (higher wins), or None when it does not apply."""
        if self.path not in (path, _ANY_PATH) or self.method not in (method, _ANY):
            return None
        return (self.path == path) * 2 + (self.method == method)


class Throttles:
    """One bucket per method with a throttling setting, and one per API key under a usage plan's throttle."""

    def __init__(self, method_settings: Sequence[Mapping[str, Any]] = (), usage_plan: Mapping[str, Any] | None = None):
        self._limits = [
            _MethodLimit(
                decode_resource_path(setting.get("ResourcePath", _ANY_PATH)),
                str(setting.get("HttpMethod", _ANY)).upper(),
                float(setting["ThrottlingRateLimit"]),
                int(setting["ThrottlingBurstLimit"]),
            )
            for setting in method_settings
            if "ThrottlingRateLimit" in setting and "ThrottlingBurstLimit" in setting
        ]
        throttle = (usage_plan or {}).get("Throttle") or {}
        self._per_key = (
            (float(throttle["RateLimit"]), int(throttle["BurstLimit"]))
            if "RateLimit" in throttle and "BurstLimit" in throttle
            else None
        )
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()

    @classmethod
    def of_api(cls, api_properties: Mapping[str, Any]) -> Throttles:
        return cls(api_properties.get("MethodSettings") or (), (api_properties.get("Auth") or {}).get("UsagePlan"))

    def method_limit(self, path: str, method: str) -> tuple[float, int] | None:
        """The (rate, burst) the stage sets for this method: its most specific MethodSettings entry."""
        ranked = [(limit.specificity(path, method), limit) for limit in self._limits]
        applicable = [(rank, limit) for rank, limit in ranked if rank is not None]
        if not applicable:
            return None
        _, limit = max(applicable, key=lambda pair: pair[0])
        return limit.rate, limit.burst

    def _bucket(self, name: tuple[str, str], rate: float, burst: int) -> TokenBucket:
        with self._lock:
            if name not in self._buckets:
                self._buckets[name] = TokenBucket(rate, burst)
            return self._buckets[name]

    def admit(self, path: str, method: str, api_key: str | None) -> bool:
        """False when API Gateway would answer 429: the key's usage plan or the method's stage limit is spent."""
        if (
            api_key is not None
            and self._per_key is not None
            and not self._bucket(("key", api_key), *self._per_key).take()
        ):
            return False
        limit = self.method_limit(path, method)
        return limit is None or self._bucket((method, path), *limit).take()
