"""Secrets by reference: a deployed stack names an SSM SecureString; the local stack passes the value.

`<NAME>` holds the value itself (local runs, tests); `<NAME>_PARAM` names the SSM parameter,
read with Powertools Parameters and cached for five minutes so that a rotated key is picked up.
"""

from __future__ import annotations

import os

CACHE_SECONDS = 300


def secret(name: str) -> str | None:
    value = os.environ.get(name)
    if value:
        return value
    parameter_name = os.environ.get(f"{name}_PARAM")
    if not parameter_name:
        return None
    # Imported here: only functions that hold a secret by reference pay for Parameters.
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_parameter(parameter_name, decrypt=True, max_age=CACHE_SECONDS)


def is_configured(name: str) -> bool:
    """True when a secret is expected, so that a missing value fails closed rather than open."""
    return bool(os.environ.get(name) or os.environ.get(f"{name}_PARAM"))
