"""A stand-in for Amazon Bedrock's Converse API, for the dev stack and tests: `POST /model/{modelId}/converse`.

Requests are checked against botocore's own model of Converse (the ConverseRequest shape: types, required
members, one member per union) and the rules Bedrock adds (messages start with the user and alternate, a tool
name is `[a-zA-Z0-9_-]+`, a toolChoice names a tool that is offered, an input schema is a JSON Schema object);
anything else is a 400 ValidationException in AWS's error shape (`x-amzn-ErrorType` header, `{"message"}` body).
The simulator needs the hotel's entries and a tool to answer with, so `system` and `toolConfig` are required too.

Its answer is deterministic and honest: it reads the hotel file from the `<hotel_file>` block of the system
prompt it was sent (it knows no hotel of its own) and calls the forced tool naming an FAQ or a department only
when the guest's message equals, ignoring case and punctuation, one of that entry's questions or examples;
anything else is staff. The language is that of the list that matched, else the file's first. The answer is
checked against the tool's own input schema before it goes out, so a schema that cannot express the file's
entries is found here rather than by a model.

Failure injection for tests (`fail()`, `POST /__sim/fail`): the next N calls answer a 5xx or 4xx, a throttle
(429), hang past the client's read timeout, call the tool with a bad input, or write text instead of calling it.
Every request is kept (`requests()`, `GET /__sim/requests`) so tests can read exactly what the engine sent.
SigV4 headers are accepted and ignored.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import botocore.session
from botocore.validate import ParamValidator
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

logger = logging.getLogger(__name__)

_CONVERSE_PATH = re.compile(r"^/model/(?P<model>[^/]+)/converse$")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_HOTEL_FILE = re.compile(r"<hotel_file>\s*(?P<json>.*?)\s*</hotel_file>", re.DOTALL)
_PUNCTUATION = re.compile(r"[^\w\s]|_")
# The error type Bedrock names for each status (botocore's Converse error shapes).
ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
# What `fail` can inject, beside an HTTP status from ERROR_TYPES.
FAILURE_KINDS = ("throttle", "timeout", "bad_tool", "text")
# bad_tool's default input: a well-formed call naming an FAQ no hotel file has.
BAD_TOOL_INPUT: dict[str, Any] = {"faqs": ["not_in_the_file"], "department": None, "staff": False, "language": "en"}
_SERVE_POLL_SECONDS = 0.1


@dataclass
class _Failure:
    kind: str | int
    remaining: int
    tool_input: dict[str, Any] | None = None


@dataclass
class _Reply:
    status: int
    body: dict[str, Any] | list[Any]
    error_type: str | None = None


class SimulatorRequestError(ValueError):
    """A request Bedrock would refuse with a 400 ValidationException."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: ConverseSimulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its read timeout during "timeout") is expected here.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "Converse-simulator"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = self.rfile.read(length) if length > 0 else b""
        reply = self.server.simulator.handle(method, urlsplit(self.path).path, raw)
        payload = json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            if reply.error_type:
                self.send_header(
                    "x-amzn-ErrorType", f"{reply.error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"
                )
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            # The client left (its read timeout ran out) before the answer was ready.
            self.close_connection = True

    def log_message(self, template: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), template % args)


class ConverseSimulator:
    """Bedrock Runtime's Converse on a local port. `hang_seconds`: how long an injected "timeout" holds its answer
    (longer than the client's read timeout; stop() ends the wait)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, hang_seconds: float = 30.0) -> None:
        self._host = host
        self._requested_port = port
        self._hang_seconds = hang_seconds
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._requests: list[dict[str, Any]] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        model = botocore.session.get_session().get_service_model("bedrock-runtime")
        self._request_shape = model.operation_model("Converse").input_shape

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> str:
        if self._server is not None:
            return self.url
        self._stopping.clear()
        self._server = _Server((self._host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _SERVE_POLL_SECONDS},
            name=f"converse-sim-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("Converse simulator listening on %s", self.url)
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # --- control (tests and POST /__sim/...) ----------------------------------------------------

    def fail(self, kind: str | int, times: int = 1, tool_input: dict[str, Any] | None = None) -> None:
        """The next `times` Converse calls fail as `kind`: an HTTP status of ERROR_TYPES, or one of FAILURE_KINDS.
        `tool_input` replaces bad_tool's input (e.g. wrong types)."""
        if kind not in FAILURE_KINDS and not (isinstance(kind, int) and kind in ERROR_TYPES and kind != 200):
            raise ValueError(f"kind must be one of {FAILURE_KINDS} or a status of {sorted(ERROR_TYPES)}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError("times must be a whole number, 1 or more")
        if tool_input is not None and kind != "bad_tool":
            raise ValueError("input goes with bad_tool only")
        with self._lock:
            self._failures.append(_Failure(kind, times, tool_input))

    def clear(self) -> None:
        """No failures pending, no requests kept."""
        with self._lock:
            self._failures.clear()
            self._requests.clear()

    def requests(self) -> list[dict[str, Any]]:
        """Every Converse request received, oldest first: `{"model_id", "body"}` with the JSON body as sent."""
        with self._lock:
            return json.loads(json.dumps(self._requests))

    def last_request(self) -> dict[str, Any] | None:
        with self._lock:
            return json.loads(json.dumps(self._requests[-1])) if self._requests else None

    # --- HTTP ----------------------------------------------------------------------------------

    def handle(self, method: str, path: str, raw: bytes) -> _Reply:
        match = _CONVERSE_PATH.match(path)
        if method == "POST" and match:
            return self._converse(unquote(match.group("model")), raw)
        if method == "POST" and path == "/__sim/fail":
            return self._control_fail(raw)
        if method == "POST" and path == "/__sim/reset":
            self.clear()
            return _Reply(200, {"ok": True})
        if method == "GET" and path == "/__sim/requests":
            return _Reply(200, self.requests())
        if method == "GET" and path == "/":
            return _Reply(200, {"simulator": "bedrock-runtime converse"})
        return _Reply(404, {"message": f"no route for {method} {path}"}, "UnknownOperationException")

    def _control_fail(self, raw: bytes) -> _Reply:
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            self.fail(body.get("status"), body.get("times", 1), body.get("input"))
        except ValueError as error:
            return _Reply(400, {"message": str(error)}, "ValidationException")
        return _Reply(200, {"ok": True})

    def _converse(self, model_id: str, raw: bytes) -> _Reply:
        try:
            body = json.loads(raw or b"null")
            request = self._checked(model_id, body)
        except (ValueError, SimulatorRequestError) as error:
            return _Reply(400, {"message": str(error)}, "ValidationException")
        with self._lock:
            self._requests.append({"model_id": model_id, "body": body})
            failure = self._take_failure()
        started = time.monotonic()
        if failure is not None and not isinstance(failure.kind, str):
            return _Reply(failure.kind, {"message": "The simulator was told to fail."}, ERROR_TYPES[failure.kind])
        if failure is not None and failure.kind == "throttle":
            return _Reply(
                429, {"message": "Too many requests, please wait before trying again."}, "ThrottlingException"
            )
        if failure is not None and failure.kind == "timeout":
            self._stopping.wait(self._hang_seconds)
        tool_name, schema = request
        if failure is not None and failure.kind == "text":
            content: dict[str, Any] = {"text": "I think the guest is asking about the wifi."}
            return _Reply(200, _response(content, "end_turn", body, started))
        if failure is not None and failure.kind == "bad_tool":
            tool_input = failure.tool_input if failure.tool_input is not None else BAD_TOOL_INPUT
        else:
            try:
                tool_input = classification(body)
            except SimulatorRequestError as error:
                return _Reply(400, {"message": str(error)}, "ValidationException")
            problems = sorted(error.message for error in Draft202012Validator(schema).iter_errors(tool_input))
            if problems:
                # The file's own entries do not fit the tool's schema: the engine's schema is wrong.
                message = f"simulator: the answer {tool_input} does not fit the tool's inputSchema: {problems}"
                return _Reply(400, {"message": message}, "ValidationException")
        tool_use = {
            "toolUse": {"toolUseId": f"tooluse_{uuid.uuid4().hex[:22]}", "name": tool_name, "input": tool_input}
        }
        return _Reply(200, _response(tool_use, "tool_use", body, started))

    def _take_failure(self) -> _Failure | None:
        if not self._failures:
            return None
        failure = self._failures[0]
        failure.remaining -= 1
        if failure.remaining == 0:
            self._failures.pop(0)
        return failure

    def _checked(self, model_id: str, body: Any) -> tuple[str, dict[str, Any]]:
        """The tool the model must call and its input schema; SimulatorRequestError as Bedrock's 400 would say."""
        if not isinstance(body, dict):
            raise SimulatorRequestError("The request body must be a JSON object.")
        if "modelId" in body:
            raise SimulatorRequestError("modelId goes in the path, not in the body.")
        params = {"modelId": model_id, **body}
        report = ParamValidator().validate(params, self._request_shape)
        if report.has_errors():
            raise SimulatorRequestError(report.generate_report())
        if not 1 <= len(model_id) <= 2048:
            raise SimulatorRequestError("The provided model identifier is invalid.")
        for required in ("messages", "system", "toolConfig"):
            if not body.get(required):
                raise SimulatorRequestError(f"simulator: the request needs {required}")
        messages = body["messages"]
        for index, message in enumerate(messages):
            expected = "user" if index % 2 == 0 else "assistant"
            if message["role"] != expected:
                raise SimulatorRequestError(
                    "A conversation must start with a user message and alternate between user and assistant."
                )
            if not message["content"]:
                raise SimulatorRequestError(f"The content field in the Message object at messages.{index} is empty.")
        if messages[-1]["role"] != "user":
            raise SimulatorRequestError("A conversation must end with a user message.")
        tools: dict[str, dict[str, Any]] = {}
        for index, tool in enumerate(body["toolConfig"]["tools"]):
            spec = tool.get("toolSpec")
            if spec is None:
                continue
            if not _TOOL_NAME.match(spec["name"]):
                raise SimulatorRequestError(f"toolConfig.tools.{index}.toolSpec.name must match [a-zA-Z0-9_-]+.")
            schema = spec["inputSchema"].get("json")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise SimulatorRequestError(
                    f"The value at toolConfig.tools.{index}.toolSpec.inputSchema.json.type must be object."
                )
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as error:
                raise SimulatorRequestError(
                    f"toolConfig.tools.{index} has an invalid inputSchema: {error.message}"
                ) from error
            if spec["name"] in tools:
                raise SimulatorRequestError(f"The toolConfig has two tools named {spec['name']}.")
            tools[spec["name"]] = schema
        choice = body["toolConfig"].get("toolChoice", {})
        forced = choice.get("tool", {}).get("name")
        if forced is not None and forced not in tools:
            raise SimulatorRequestError(f"toolChoice names {forced}, which is not in toolConfig.tools.")
        if forced is None:
            if len(tools) != 1:
                raise SimulatorRequestError("simulator: offer one tool, or force one with toolChoice.tool")
            forced = next(iter(tools))
        return forced, tools[forced]


def normalised(text: str) -> str:
    """Text as the simulator compares it: NFKC, case-folded, without punctuation, single spaces."""
    text = _PUNCTUATION.sub("", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(text.split())


def hotel_entries(body: dict[str, Any]) -> dict[str, Any]:
    """The hotel file the engine put in the system prompt (its `<hotel_file>` JSON block)."""
    system = "\n".join(block["text"] for block in body.get("system", []) if "text" in block)
    match = _HOTEL_FILE.search(system)
    if match is None:
        raise SimulatorRequestError("simulator: the system prompt holds no <hotel_file> block")
    try:
        hotel = json.loads(match.group("json"))
    except ValueError as error:
        raise SimulatorRequestError(f"simulator: the <hotel_file> block is not JSON ({error})") from error
    if not isinstance(hotel, dict) or not hotel.get("languages"):
        raise SimulatorRequestError("simulator: the <hotel_file> block names no languages")
    return hotel


def guest_message(body: dict[str, Any]) -> str:
    """The last user turn's text."""
    return " ".join(block["text"] for block in body["messages"][-1]["content"] if "text" in block)


def classification(body: dict[str, Any]) -> dict[str, Any]:
    """The `route` input an exact reading of the request gives: an entry only for an exact question or example."""
    hotel = hotel_entries(body)
    message = normalised(guest_message(body))
    languages = list(hotel["languages"])
    for faq in hotel.get("faqs", []):
        for language, questions in faq.get("questions", {}).items():
            if message and any(normalised(question) == message for question in questions):
                return {"faqs": [faq["id"]], "department": None, "staff": False, "language": language}
    for department in hotel.get("departments", []):
        for language, examples in department.get("examples", {}).items():
            if message and any(normalised(example) == message for example in examples):
                return {"faqs": [], "department": department["department"], "staff": False, "language": language}
    return {"faqs": [], "department": None, "staff": True, "language": languages[0]}


def _response(content: dict[str, Any], stop_reason: str, body: dict[str, Any], started: float) -> dict[str, Any]:
    # Tokens estimated at four characters each: enough for code that reads `usage`, not a price list.
    input_tokens = max(1, len(json.dumps(body)) // 4)
    output_tokens = max(1, len(json.dumps(content)) // 4)
    return {
        "output": {"message": {"role": "assistant", "content": [content]}},
        "stopReason": stop_reason,
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        },
        "metrics": {"latencyMs": max(1, round((time.monotonic() - started) * 1000))},
    }


def main() -> None:
    """`python -m devstack.converse_sim [port]`: the simulator on its own, until Ctrl-C."""
    logging.basicConfig(level=logging.INFO)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3100
    with ConverseSimulator(port=port) as simulator:
        print(f"Converse simulator on {simulator.url}; AWS_ENDPOINT_URL_BEDROCK_RUNTIME={simulator.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
