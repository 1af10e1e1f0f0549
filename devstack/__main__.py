"""`python -m devstack`: runs Concierge locally until Ctrl-C, and prints how to try it.

Configuration comes from the environment and from a `.env` file at the repository root (see `.env.example`);
variables already set in the environment win over the file.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from devstack import run_state
from devstack.api import route_for
from devstack.stack import LocalStack, PortInUse, StackConfig
from devstack.template import REPO_ROOT

ENV_FILE = REPO_ROOT / ".env"

# The guide's manual tests (waha-integration-guide.md, "Testing"), kept to its sample values.
_REGISTER_BODY = {
    "full_name": "Test Guest",
    "room_number": "101",
    "checkin_date": "2025-11-22",
    "email": "test@example.com",
    "phone_number": "081234567890",
}
_INBOUND_BODY = {"phone": "081234567890", "text": "Hello"}


def _webhook_body(session: str) -> dict[str, object]:
    return {
        "id": "test-id",
        # The event's time in milliseconds: the webhook refuses events older than WEBHOOK_MAX_AGE_HOURS as stale.
        "timestamp": int(time.time() * 1000),
        "session": session,
        "event": "message",
        "payload": {
            "id": "msg-id",
            "timestamp": 1700000000,
            "from": "6281234567890@c.us",
            "fromMe": False,
            "to": "6280000000000@c.us",
            "body": "Test message",
            "hasMedia": False,
        },
        "me": {"id": "6280000000000@c.us"},
        "environment": {"version": "2024.1.1", "engine": "WEBJS"},
    }


def load_env_file(path: Path = ENV_FILE) -> None:
    """Sets the file's NAME=value lines that the environment does not already set."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        os.environ.setdefault(name.strip(), value)


def _json_arg(body: object) -> str:
    return shlex.quote(json.dumps(body, separators=(",", ":")))


def usage(stack: LocalStack) -> str:
    """What to print once the stack answers: its URLs and the guide's manual tests as ready-to-paste commands."""
    config = stack.config
    api = stack.api_url
    key_header = f"-H {shlex.quote(f'x-api-key: {config.api_key}')}" if config.api_key else ""
    register = route_for("RegisterGuestFunction").path
    history = route_for("GuestMessagesFunction").path.replace("{user_id}", "$USER_ID")
    session = config.waha_session or "default"
    lines = [
        "Concierge is running locally.",
        f"  API base URL:   {api}",
        f"  Staff console:  {api}/console/",
        f"  Webhook URL:    {stack.webhook_url}",
        f"  WAHA:           {stack.waha_url}" + (" (simulator)" if stack.simulator is not None else " (real WAHA)"),
        f"  AWS endpoint:   {stack.aws_endpoint}",
        f"  Bedrock:        {stack.bedrock_url}"
        + (" (Converse simulator)" if stack.converse_sim is not None else "")
        + (
            f", model {stack.function_environment['AI_MODEL_ID']}"
            if stack.function_environment.get("AI_MODEL_ID")
            else ", unused (AI_MODEL_ID unset: the built-in engine answers)"
        ),
        f"  API key:        {config.api_key or '(none: key-protected routes answer 403)'}",
        f"  Staff account:  {config.staff_email} / {config.staff_password}"
        f" (user pool {stack.staff_pool.pool_id if stack.staff_pool else '-'})",
        "",
        "1. Register a guest (answers 201 with a user_id; the welcome goes out through WAHA):",
        f"  curl -X POST {api}{register} -H 'Content-Type: application/json' {key_header} "
        f"-d {_json_arg(_REGISTER_BODY)}",
    ]
    if stack.simulator is not None:
        lines += [
            "",
            "2. The guest writes back (the simulator posts WAHA's webhook to the API; the auto-reply follows):",
            f"  curl -X POST {stack.waha_url}/api/sim/inbound -H 'Content-Type: application/json' "
            f"-d {_json_arg(_INBOUND_BODY)}",
            f"  curl {stack.waha_url}/api/sim/messages    # what WAHA 'sent'",
            "   The simulator acknowledges what it sends (DEVICE, then READ: the history's status follows), and",
            "   plays the hotel writing from its own phone:",
            f"  curl -X POST {stack.waha_url}/api/sim/hotel-message -H 'Content-Type: application/json' "
            f"-d {_json_arg({**_INBOUND_BODY, 'text': 'Your taxi is here'})}",
        ]
    else:
        lines += [
            "",
            f"2. Configure WAHA's webhook to {stack.webhook_url}, subscribed to the events message,",
            "   message.any, message.ack and session.status",
        ]
    webhook_body = _json_arg(_webhook_body(session))
    if config.waha_webhook_hmac_key:
        lines += [
            "",
            "   Or post WAHA's webhook yourself, signed with WAHA_WEBHOOK_HMAC_KEY:",
            f"  BODY={webhook_body}",
            f'  SIG=$(printf %s "$BODY" | openssl dgst -sha512 -hmac {shlex.quote(config.waha_webhook_hmac_key)}'
            " | sed 's/^.* //')",
            f"  curl -X POST {stack.webhook_url} -H 'Content-Type: application/json' "
            '-H \'X-Webhook-Hmac-Algorithm: sha512\' -H "X-Webhook-Hmac: $SIG" -d "$BODY"',
        ]
    else:
        lines += [
            "",
            "   Or post WAHA's webhook yourself (no WAHA_WEBHOOK_HMAC_KEY set, so unsigned):",
            f"  curl -X POST {stack.webhook_url} -H 'Content-Type: application/json' -d {webhook_body}",
        ]
    lines += [
        "",
        "3. Read the conversation (USER_ID: the user_id step 1 returned):",
        f'  curl {key_header} "{api}{history}"',
        "",
        "In another terminal, `make demo` runs the guide's two tests against this stack, then a whole stay",
        "(three lines and one reply; the AI concierge answering a question from the hotel's file, sending a",
        "towel request to housekeeping and leaving to staff what the file cannot answer; a staff answer the",
        "guest reads, a check-out), and",
        "`.venv/bin/python -m devstack.invoke <Function> events/<name>.json` feeds a sample event to one of",
        "its functions (as `sam local invoke -e` does, without Docker).",
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def state_of(stack: LocalStack) -> run_state.RunState:
    assert stack.api_url and stack.webhook_url and stack.waha_url and stack.aws_endpoint
    return run_state.RunState(
        pid=os.getpid(),
        api_url=stack.api_url,
        webhook_url=stack.webhook_url,
        waha_url=stack.waha_url,
        simulator=stack.simulator is not None,
        aws_endpoint=stack.aws_endpoint,
        aws_region=stack.config.aws_region,
        api_key=stack.config.api_key,
        function_environment=dict(stack.function_environment),
    )


def main() -> int:
    load_env_file()
    # Logs go to stderr, so stdout carries only the URLs and commands above (and the handlers' own output).
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # moto's server logs every AWS call (the poller makes one a second) through werkzeug's logger.
    for noisy in ("werkzeug", "botocore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("Got %s, stopping", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        config = StackConfig.from_env()
    except ValueError as error:
        print(f"Cannot start the local stack: {error}", file=sys.stderr)
        return 1
    stack = LocalStack(config)
    try:
        try:
            stack.start()
        except (PortInUse, OSError) as error:
            print(f"Cannot start the local stack: {error}", file=sys.stderr)
            return 1
        # For `make demo` and `python -m devstack.invoke`, so that they need not be told the ports again.
        run_state.write(state_of(stack))
        print(usage(stack), flush=True)
        # A timed wait, so the main thread wakes to run the signal handlers promptly.
        while not stop_requested.wait(0.5):
            pass
    finally:
        run_state.remove(os.getpid())
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
