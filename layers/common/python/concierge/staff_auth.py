"""Who may call a staff route: the hotel's own systems with their API key, or a staff member signed in to the
Cognito user pool with an ID token.

API Gateway cannot require "a key or a token" on one method, so a Lambda REQUEST authorizer decides, and the
API's key source is the authorizer (ApiKeySourceType AUTHORIZER): it hands API Gateway the key to check against the
usage plan, the caller's own x-api-key, or for a staff member the staff console's key, so the usage plan's limits
apply to both. A token is checked as Cognito's guide asks: the signature against the pool's published keys (JWKS),
the issuer, the audience (our app client), `token_use` id, and the expiry.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

# The routes a staff member's token opens; registration stays with the hotel's systems (API key only).
STAFF_ROUTES = frozenset(
    {
        ("GET", "/api/v1/sessions"),
        ("GET", "/api/v1/guests/{user_id}/messages"),
        ("POST", "/api/v1/sessions/{session_id}/messages"),
        ("POST", "/api/v1/sessions/{session_id}/resolve"),
        ("POST", "/api/v1/guests/{user_id}/checkout"),
        ("DELETE", "/api/v1/guests/{user_id}"),
        ("GET", "/api/v1/health"),
    }
)
# API Gateway answers 401 (its UNAUTHORIZED gateway response) when an authorizer raises exactly this.
UNAUTHORIZED = "Unauthorized"
_JWKS_TIMEOUT = urllib3.Timeout(connect=2.0, read=3.0)
# A token signed with a key we do not know yet fetches the keys again (Cognito rotates them), at most this often.
_JWKS_REFRESH_SECONDS = 300
# Cognito's tokens carry whole seconds; a little leeway absorbs clocks that differ by a moment.
_LEEWAY_SECONDS = 5


class Unauthorized(Exception):
    """No usable credential: a token that is malformed, forged, expired or meant for another client."""

    def __init__(self, reason: str) -> None:
        super().__init__(UNAUTHORIZED)
        self.reason = reason


@dataclass(frozen=True)
class TokenSettings:
    issuer: str
    audience: str
    jwks_url: str

    @classmethod
    def from_env(cls) -> TokenSettings:
        issuer = os.environ["STAFF_TOKEN_ISSUER"]
        return cls(
            issuer=issuer,
            audience=os.environ["STAFF_CLIENT_ID"],
            # Locally the keys are served by moto at another address than the issuer's.
            jwks_url=os.environ.get("STAFF_JWKS_URL") or f"{issuer}/.well-known/jwks.json",
        )


@dataclass(frozen=True)
class StaffMember:
    sub: str
    email: str
    author: str


class _Keys:
    """The pool's public keys, fetched once per container and again only for a key id we have not seen."""

    def __init__(self) -> None:
        self._http = urllib3.PoolManager(timeout=_JWKS_TIMEOUT, retries=urllib3.Retry(total=2, backoff_factor=0.1))
        self._sets: dict[str, tuple[KeySet, float]] = {}

    def for_token(self, url: str, kid: str | None) -> KeySet:
        cached = self._sets.get(url)
        now = time.monotonic()
        if cached is not None:
            key_set, fetched_at = cached
            known = any(key.kid == kid for key in key_set.keys)
            if known or now - fetched_at < _JWKS_REFRESH_SECONDS:
                return key_set
        response = self._http.request("GET", url)
        if response.status != 200:
            raise RuntimeError(f"the user pool's keys answered {response.status}")
        key_set = KeySet.import_key_set(json.loads(response.data))
        self._sets[url] = (key_set, now)
        return key_set


_KEYS = _Keys()


def _unverified_kid(token: str) -> str | None:
    """The key id the token's header names (to pick the key; the signature is checked after)."""
    encoded = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, binascii.Error) as error:
        raise Unauthorized("not a JWT") from error
    if not isinstance(header, dict):
        raise Unauthorized("not a JWT")
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None


def staff_member(token: str, settings: TokenSettings, now: float | None = None) -> StaffMember:
    """The signed-in person an ID token names; Unauthorized for anything that is not a valid token of our pool."""
    kid = _unverified_kid(token)
    key_set = _KEYS.for_token(settings.jwks_url, kid)
    try:
        decoded = jwt.decode(token, key_set, algorithms=["RS256"])
    except (JoseError, ValueError) as error:
        raise Unauthorized(f"signature: {type(error).__name__}") from error
    registry = jwt.JWTClaimsRegistry(
        now=int(now if now is not None else time.time()),
        leeway=_LEEWAY_SECONDS,
        iss={"essential": True, "value": settings.issuer},
        aud={"essential": True, "value": settings.audience},
        exp={"essential": True},
        sub={"essential": True},
        token_use={"essential": True, "value": "id"},
    )
    claims = decoded.claims
    try:
        registry.validate(claims)
    except JoseError as error:
        raise Unauthorized(f"claims: {type(error).__name__}") from error
    email = str(claims.get("email") or "")
    # moto's ID tokens carry the email but no name; a name set on the account wins.
    author = str(claims.get("name") or email or claims["sub"])[:100]
    return StaffMember(sub=str(claims["sub"]), email=email, author=author)


def _header(headers: dict[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name and isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _policy(effect: str, method_arn: str, principal: str) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}],
        },
    }


def authorize(
    event: dict[str, Any], settings: Callable[[], TokenSettings], staff_usage_key: Callable[[], str | None]
) -> dict[str, Any]:
    """The authorizer's answer for one REQUEST event.

    An x-api-key is passed on for API Gateway to check against the usage plan (a wrong or missing key stays its
    403); the author then comes from the body. Otherwise a bearer token must name one of our staff: Unauthorized
    (401) if not, a Deny (403) on a route that is not for staff, else an Allow with who it is in the context.
    `settings` and `staff_usage_key` are read only for a token: a caller with the API key never needs them."""
    headers = event.get("headers")
    method_arn = event["methodArn"]
    api_key = _header(headers, "x-api-key")
    authorization = _header(headers, "authorization")
    if api_key is not None or authorization is None:
        answer = _policy("Allow", method_arn, "api-key")
        if api_key is not None:
            answer["usageIdentifierKey"] = api_key
        answer["context"] = {"via": "api_key"}
        return answer
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("not a bearer token")
    member = staff_member(token.strip(), settings())
    route = (str(event.get("httpMethod", "")).upper(), str(event.get("resource", "")))
    if route not in STAFF_ROUTES:
        return _policy("Deny", method_arn, member.sub)
    answer = _policy("Allow", method_arn, member.sub)
    usage_key = staff_usage_key()
    if usage_key:
        answer["usageIdentifierKey"] = usage_key
    answer["context"] = {"via": "staff", "author": member.author, "email": member.email, "sub": member.sub}
    return answer
