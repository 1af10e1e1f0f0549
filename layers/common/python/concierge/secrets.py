"""Secrets by reference: a deployed stack names an SSM SecureString; the local stack passes the value.

`<NAME>` holds the value itself (local runs, tests); `<NAME>_PARAM` names the SSM parameter, read with the
functions' own SSM client (`aws_clients.ssm`) and kept for five minutes, so that a rotated key is picked up.
Not Powertools Parameters: it opens a boto3 session and SSM client of its own, about 55 ms of the webhook's first
invocation, and its package another 15 ms, for what these few lines do.
"""

from __future__ import annotations

import os
import time

from concierge import aws_clients, init_phase

CACHE_SECONDS = 300

# Parameter name -> (monotonic time read, value).
_read: dict[str, tuple[float, str]] = {}


def secret(name: str) -> str | None:
    value = os.environ.get(name)
    if value:
        return value
    parameter_name = os.environ.get(f"{name}_PARAM")
    if not parameter_name:
        return None
    now = time.monotonic()
    cached = _read.get(parameter_name)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    # A parameter that is missing or unreadable raises (botocore's ClientError): the caller fails closed.
    answer = aws_clients.ssm().get_parameter(Name=parameter_name, WithDecryption=True)
    value = str(answer["Parameter"]["Value"])
    _read[parameter_name] = (now, value)
    return value


def prepare(name: str) -> None:
    """During a function's init: the SSM client this secret will be read with, when it is read from SSM."""
    if not os.environ.get(name) and os.environ.get(f"{name}_PARAM"):
        aws_clients.ssm()


def forget() -> None:
    """Drops the values read, so the next use reads SSM again: after a SnapStart restore (a snapshot must not
    carry a secret into every instance), and in tests."""
    _read.clear()


def is_configured(name: str) -> bool:
    """True when a secret is expected, so that a missing value fails closed rather than open."""
    return bool(os.environ.get(name) or os.environ.get(f"{name}_PARAM"))


init_phase.after_restore(forget)
