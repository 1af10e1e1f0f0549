"""`python -m devstack.invoke <Function> <event.json>`: what `sam local invoke -e <event.json> <Function>` does,
without Docker. Runs one function of template.yaml on an event (one of events/*.json, or `-` for standard input)
and prints its result as JSON.

With `make run` running, the function runs against that stack: its table and queues, its WAHA, its settings (read
from the state file `make run` writes, see devstack/run_state.py), so a registration made here is the running
stack's, and its welcome goes out through that stack's sender. Without one, the function runs in a stack of its own,
started for this call and stopped after it (an empty table: a history or webhook event finds no guest).

The function's logs go to standard error and its result alone to standard output, as with `sam local invoke`.
Exit status: 0 when the function returned (whatever statusCode it chose), 1 when it raised or timed out, as Lambda
reports a function error, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import traceback
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from devstack import run_state
from devstack.__main__ import load_env_file
from devstack.functions import InvocationError, invoke, load_handler
from devstack.lambda_context import LambdaContext
from devstack.stack import EnvironmentPatch, LocalStack, StackConfig
from devstack.template import FunctionSpec, functions

_FAKE_CREDENTIAL = "testing"


class UsageError(ValueError):
    """The command line names no function of the template, or no readable JSON event."""


def read_event(source: str, stdin: TextIO) -> Any:
    try:
        text = stdin.read() if source == "-" else Path(source).read_text()
    except OSError as error:
        raise UsageError(f"cannot read the event {source}: {error.strerror}") from error
    try:
        return json.loads(text)
    except ValueError as error:
        raise UsageError(f"the event {source} is not JSON: {error}") from error


def function_spec(name: str) -> FunctionSpec:
    specs = functions()
    if name not in specs:
        raise UsageError(f"template.yaml has no function {name!r}; it has: {', '.join(sorted(specs))}")
    return specs[name]


def invoke_in_running_stack(spec: FunctionSpec, event: Any, state: run_state.RunState) -> Any:
    """Loads the handler in this process with the running stack's environment, as a cold start there would."""
    config = StackConfig.from_env()
    patch = EnvironmentPatch()
    patch.update(state.function_environment)
    patch.update(
        {
            "AWS_ENDPOINT_URL": state.aws_endpoint,
            "AWS_DEFAULT_REGION": state.aws_region,
            "AWS_REGION": state.aws_region,
            # The running stack's secrets come from the same environment and .env file as here.
            "WAHA_API_KEY": config.waha_api_key,
            "WAHA_WEBHOOK_HMAC_KEY": config.waha_webhook_hmac_key,
            "WAHA_API_KEY_PARAM": None,
            "WAHA_WEBHOOK_HMAC_KEY_PARAM": None,
        }
    )
    # Never real credentials against a local endpoint.
    patch.set_default("AWS_ACCESS_KEY_ID", _FAKE_CREDENTIAL)
    patch.set_default("AWS_SECRET_ACCESS_KEY", _FAKE_CREDENTIAL)
    try:
        handler = load_handler(spec)
        context = LambdaContext(
            function_name=spec.logical_id,
            memory_limit_in_mb=spec.memory_size,
            timeout_seconds=spec.timeout,
            region=state.aws_region,
        )
        return invoke(handler, event, context)
    finally:
        patch.restore()


def invoke_in_own_stack(spec: FunctionSpec, event: Any) -> Any:
    """Starts a stack of its own on free ports (the `make run` ports may be taken), invokes, stops it."""
    config = replace(
        StackConfig.from_env(), api_port=0, moto_port=0, waha_sim_port=0, converse_sim_port=0, aws_endpoint_url=None
    )
    with LocalStack(config) as stack:
        return stack.invoke(spec.logical_id, event)


def main(argv: Sequence[str] | None = None, stdin: TextIO = sys.stdin) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.invoke",
        description="Invoke one function of template.yaml on an event, as `sam local invoke -e` does, without Docker.",
    )
    parser.add_argument("function", help="the function's logical id, e.g. RegisterGuestFunction")
    parser.add_argument("event", help="a JSON event file (events/<name>.json), or - for standard input")
    arguments = parser.parse_args(argv)
    load_env_file()
    # moto's server (in a stack of our own) logs every AWS call through werkzeug's logger.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        spec = function_spec(arguments.function)
        event = read_event(arguments.event, stdin)
    except UsageError as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 2
    state = run_state.read()
    if state is None:
        print("No `make run` is running: invoking in a stack of its own, stopped afterwards.", file=sys.stderr)
    try:
        # As `sam local invoke`: the function's logs on standard error, its result alone on standard output.
        # (Powertools' Logger takes the stream it writes to when the handler module is imported, inside this.)
        with contextlib.redirect_stdout(sys.stderr):
            result = invoke_in_own_stack(spec, event) if state is None else invoke_in_running_stack(spec, event, state)
    except InvocationError as error:
        print(f"{spec.logical_id} failed: {error}", file=sys.stderr)
        return 1
    except Exception:
        # The function raised: Lambda reports it as a function error with its trace, and so does this.
        print(f"{spec.logical_id} raised:\n{traceback.format_exc()}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
