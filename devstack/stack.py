"""The whole of Concierge on one machine: moto for AWS, a WAHA (simulated unless WAHA_HOST names a real one),
the template's tables and queues, the local API Gateway and the SQS trigger, all around the real handlers.

The handlers share this process, so their environment is the process environment: the stack resolves every
function's template Environment against the local resources and config, and sets it before loading them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import urllib3

from devstack.api import LocalApi, route_for
from devstack.functions import (
    LAYER_PYTHON_DIR,
    Handler,
    ensure_layer_on_path,
    invoke,
    load_handlers,
    modules_loaded_from,
)
from devstack.lambda_context import LOCAL_ACCOUNT_ID, LambdaContext
from devstack.resources import LocalResources, create_resources
from devstack.sender import QueuePoller, sqs_event_sources
from devstack.staff_pool import DEFAULT_STAFF_EMAIL, DEFAULT_STAFF_PASSWORD, StaffPool, create_staff_pool
from devstack.template import FunctionSpec, functions, load_template, parameter_default, resources_of_type

LOG = logging.getLogger(__name__)

WEBHOOK_FUNCTION_ID = "WahaWebhookFunction"
# The literal in the template that mirrors the OutboundQueue's maxReceiveCount (the sender's "last attempt").
MAX_RECEIVE_COUNT_VARIABLE = "OUTBOUND_MAX_RECEIVE_COUNT"
# The same for the MediaQueue's copier.
MEDIA_MAX_RECEIVE_COUNT_VARIABLE = "MEDIA_MAX_RECEIVE_COUNT"
_FAKE_CREDENTIAL = "testing"
# `make run`'s simulated guest gets a message a second after it is sent and reads it two seconds later.
MAKE_RUN_ACK_DELIVERED_SECONDS = 1.0
MAKE_RUN_ACK_READ_SECONDS = 2.0
# `make run`'s Converse simulator (Bedrock's stand-in); tests' stacks take a free port.
MAKE_RUN_CONVERSE_SIM_PORT = 3100
_READY_TIMEOUT_SECONDS = 10.0


def _env_str(environ: Mapping[str, str], name: str) -> str | None:
    # An empty value (`NAME=` in a .env file) means "not set", as it does for the handlers' secrets.
    value = environ.get(name, "").strip()
    return value or None


def _env_int(environ: Mapping[str, str], name: str) -> int | None:
    value = _env_str(environ, name)
    return int(value) if value is not None else None


def _env_flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = _env_str(environ, name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "on", "yes"}:
        return True
    if value.lower() in {"0", "false", "off", "no"}:
        return False
    raise ValueError(f"{name} must be on or off (1/0, true/false), not {value!r}")


def _env_port(environ: Mapping[str, str], name: str, default: int) -> int:
    value = _env_int(environ, name)
    return default if value is None else value


def _env_seconds_or_off(environ: Mapping[str, str], name: str, default: float | None) -> float | None:
    """Seconds (0 or more), or None for `off`; unset or empty: the default."""
    value = _env_str(environ, name)
    if value is None:
        return default
    if value.lower() == "off":
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"{name} must be a number of seconds (0 or more) or off, not {value!r}")
    return seconds


SAMPLE_KNOWLEDGE_FILE = Path(__file__).resolve().parent.parent / "hotels" / "sample-hotel.toml"


@dataclass(frozen=True)
class StackConfig:
    """What a local run may change. None means: the template's parameter default, or start our own."""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    moto_port: int = 5000
    waha_sim_port: int = 3000
    # The Converse simulator, Bedrock Runtime's stand-in for AI_MODEL_ID (0: a free port).
    converse_sim_port: int = 0
    # Set: this Bedrock Runtime endpoint (AWS_ENDPOINT_URL_BEDROCK_RUNTIME). None: start the Converse simulator.
    bedrock_endpoint_url: str | None = None
    # Set: use that AWS endpoint (e.g. a moto server already running). None: start moto in-process.
    aws_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    # Set: a real WAHA. None: start the WAHA simulator.
    waha_host: str | None = None
    waha_api_path: str | None = None
    waha_session: str | None = None
    waha_api_key: str | None = None
    waha_webhook_hmac_key: str | None = None
    # The key hotel systems send as x-api-key; None makes every key-protected route answer 403.
    api_key: str | None = "local-dev-key"
    default_phone_region: str | None = None
    log_level: str | None = None
    resource_prefix: str = "concierge"
    # The template's 60 s visibility and 5 receives make a retry test slow; tests shorten them here.
    visibility_timeout_override: int | None = None
    redrive_max_receive_override: int | None = None
    # The stage's and usage plan's throttling, as deployed (429 past the limits). Off for tests that push load
    # through the local API on purpose; `make run` turns it on unless API_THROTTLING says otherwise.
    api_throttling: bool = False
    # The simulator's acks of what it sent: DEVICE this long after a send, READ this long after DEVICE; None
    # sends none of that kind. Off here, so tests see messages stay SENT; `make run` turns them on.
    waha_sim_ack_delivered_seconds: float | None = None
    waha_sim_ack_read_seconds: float | None = None
    # How long the simulator keeps a guest's file (WAHA's WHATSAPP_FILES_LIFETIME; 0 keeps them).
    waha_sim_files_lifetime_seconds: float = 180.0
    # Numbers the simulator's check-exists says are not on WhatsApp (WAHA_SIM_NOT_ON_WHATSAPP, comma-separated).
    waha_sim_not_on_whatsapp: tuple[str, ...] = ()
    # The one staff account created in the local user pool (the console's sign-in).
    staff_email: str = DEFAULT_STAFF_EMAIL
    staff_password: str = DEFAULT_STAFF_PASSWORD
    # The hotel knowledge the answering function reads (KNOWLEDGE_FILE): the sample hotel unless told another.
    knowledge_file: str = str(SAMPLE_KNOWLEDGE_FILE)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackConfig:
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            api_host=_env_str(env, "API_HOST") or defaults.api_host,
            api_port=_env_port(env, "API_PORT", defaults.api_port),
            moto_port=_env_port(env, "MOTO_PORT", defaults.moto_port),
            waha_sim_port=_env_port(env, "WAHA_SIM_PORT", defaults.waha_sim_port),
            converse_sim_port=_env_port(env, "CONVERSE_SIM_PORT", MAKE_RUN_CONVERSE_SIM_PORT),
            bedrock_endpoint_url=_env_str(env, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"),
            aws_endpoint_url=_env_str(env, "AWS_ENDPOINT_URL"),
            aws_region=_env_str(env, "AWS_DEFAULT_REGION") or _env_str(env, "AWS_REGION") or defaults.aws_region,
            waha_host=_env_str(env, "WAHA_HOST"),
            waha_api_path=_env_str(env, "WAHA_API_PATH"),
            waha_session=_env_str(env, "WAHA_SESSION"),
            waha_api_key=_env_str(env, "WAHA_API_KEY"),
            waha_webhook_hmac_key=_env_str(env, "WAHA_WEBHOOK_HMAC_KEY"),
            api_key=_env_str(env, "API_KEY") or defaults.api_key,
            default_phone_region=_env_str(env, "DEFAULT_PHONE_REGION"),
            log_level=_env_str(env, "LOG_LEVEL"),
            resource_prefix=_env_str(env, "RESOURCE_PREFIX") or defaults.resource_prefix,
            visibility_timeout_override=_env_int(env, "VISIBILITY_TIMEOUT_OVERRIDE"),
            redrive_max_receive_override=_env_int(env, "REDRIVE_MAX_RECEIVE_OVERRIDE"),
            api_throttling=_env_flag(env, "API_THROTTLING", default=True),
            waha_sim_ack_delivered_seconds=_env_seconds_or_off(
                env, "WAHA_SIM_ACK_DELIVERED_SECONDS", MAKE_RUN_ACK_DELIVERED_SECONDS
            ),
            waha_sim_ack_read_seconds=_env_seconds_or_off(env, "WAHA_SIM_ACK_READ_SECONDS", MAKE_RUN_ACK_READ_SECONDS),
            waha_sim_files_lifetime_seconds=_env_seconds_or_off(
                env, "WHATSAPP_FILES_LIFETIME", defaults.waha_sim_files_lifetime_seconds
            )
            or 0.0,
            waha_sim_not_on_whatsapp=tuple(
                phone.strip() for phone in (_env_str(env, "WAHA_SIM_NOT_ON_WHATSAPP") or "").split(",") if phone.strip()
            ),
            staff_email=_env_str(env, "STAFF_EMAIL") or defaults.staff_email,
            staff_password=_env_str(env, "STAFF_PASSWORD") or defaults.staff_password,
            knowledge_file=_env_str(env, "KNOWLEDGE_FILE") or defaults.knowledge_file,
        )


class _Unresolvable(Exception):
    """A value that has no local counterpart (e.g. the name of an SSM parameter): the variable is left out."""


@dataclass
class TemplateEnvironment:
    """Resolves the intrinsics used in Environment blocks against local resources and parameter values."""

    template: Mapping[str, Any]
    resources: LocalResources
    parameters: Mapping[str, str | None]
    region: str
    stack_name: str
    account_id: str = LOCAL_ACCOUNT_ID
    # Physical ids of other local resources by logical id (the staff user pool and its app client).
    local_ids: Mapping[str, str] = field(default_factory=dict)
    _resource_types: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self._resource_types = {name: resource["Type"] for name, resource in self.template["Resources"].items()}

    def variables(self, spec: FunctionSpec) -> dict[str, str]:
        """The function's variables as Lambda would see them; NoValue and SSM-only values are left out."""
        resolved = {}
        for name, raw in spec.environment.items():
            try:
                value = self.value(raw)
            except _Unresolvable as reason:
                LOG.debug("%s: %s is left out locally (%s)", spec.logical_id, name, reason)
                continue
            except ValueError as error:
                raise ValueError(f"{spec.logical_id}: environment variable {name}: {error}") from error
            if value is not None:
                resolved[name] = value
        return resolved

    def value(self, node: Any) -> str | None:
        if isinstance(node, (str, int, float, bool)):
            return str(node).lower() if isinstance(node, bool) else str(node)
        if not isinstance(node, Mapping) or len(node) != 1:
            raise ValueError(f"cannot resolve {node!r}")
        ((function, argument),) = node.items()
        if function == "Ref":
            return self._ref(argument)
        if function == "Fn::GetAtt":
            logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            return self._get_att(logical_id, attribute)
        if function == "Fn::If":
            condition, when_true, when_false = argument
            return self.value(when_true if self._condition(condition) else when_false)
        if function == "Fn::Sub":
            return self._sub(argument)
        if function == "Fn::Join":
            delimiter, items = argument
            values = [self.value(item) for item in items]
            return delimiter.join(value for value in values if value is not None)
        raise ValueError(f"{function} is not supported by the local stack")

    def _ref(self, name: str) -> str | None:
        pseudo = {
            "AWS::NoValue": None,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}):
            value = self.parameters.get(name)
            if value is None:
                value = parameter_default(name, dict(self.template))
            if value is None:
                raise _Unresolvable(f"parameter {name} has no local value")
            # A Number parameter's default reads from YAML as a number; CloudFormation hands every Ref a string.
            return str(value)
        resource_type = self._resource_types.get(name)
        if resource_type == "AWS::DynamoDB::Table":
            return self.resources.table_name
        if resource_type == "AWS::SQS::Queue":
            return self.resources.queue_urls[name]
        if resource_type == "AWS::S3::Bucket":
            return self.resources.bucket_names[name]
        if name in self.local_ids:
            return self.local_ids[name]
        if resource_type == "AWS::ApiGateway::ApiKey":
            # Deployed, the authorizer reads the key's value by its id; locally the value is set directly.
            raise _Unresolvable(f"the API key {name} is passed by value locally")
        raise ValueError(f"Ref {name} has no local value")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        resource_type = self._resource_types.get(logical_id)
        if resource_type == "AWS::SQS::Queue":
            url = self.resources.queue_urls[logical_id]
            attributes = {
                "Arn": self.resources.queue_arns[logical_id],
                "QueueUrl": url,
                "QueueName": url.rsplit("/", 1)[-1],
            }
            if attribute in attributes:
                return attributes[attribute]
        if resource_type == "AWS::DynamoDB::Table" and attribute == "Arn":
            return f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{self.resources.table_name}"
        raise ValueError(f"GetAtt {logical_id}.{attribute} has no local value")

    def _sub(self, argument: Any) -> str:
        template_string, variables = (argument, {}) if isinstance(argument, str) else argument

        def replace(match: re.Match[str]) -> str:
            escaped, name = match.groups()
            if escaped:
                return "${" + name + "}"
            if name in variables:
                value = self.value(variables[name])
            elif "." in name and not name.startswith("AWS::"):
                value = self._get_att(*name.split(".", 1))
            else:
                value = self._ref(name)
            return value or ""

        return re.sub(r"\$\{(!?)([^}]*)\}", replace, template_string)

    def _condition(self, node: Any) -> bool:
        if isinstance(node, str):
            return self._condition(self.template["Conditions"][node])
        ((function, argument),) = node.items()
        if function == "Fn::Equals":
            left, right = (self.value(item) for item in argument)
            return left == right
        if function == "Fn::Not":
            return not self._condition(argument[0])
        if function == "Fn::And":
            return all(self._condition(item) for item in argument)
        if function == "Fn::Or":
            return any(self._condition(item) for item in argument)
        if function == "Condition":
            return self._condition(argument)
        raise ValueError(f"condition {function} is not supported by the local stack")


class EnvironmentPatch:
    """Sets process environment variables and puts the previous values back on restore()."""

    def __init__(self) -> None:
        self._previous: dict[str, str | None] = {}

    def set(self, name: str, value: str | None) -> None:
        if name not in self._previous:
            self._previous[name] = os.environ.get(name)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    def update(self, values: Mapping[str, str | None]) -> None:
        for name, value in values.items():
            self.set(name, value)

    def original(self, name: str) -> str | None:
        """The variable's value before this patch changed it (the user's own setting)."""
        return self._previous[name] if name in self._previous else os.environ.get(name)

    def set_default(self, name: str, value: str) -> None:
        if not os.environ.get(name):
            self.set(name, value)

    def restore(self) -> None:
        for name, value in self._previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._previous.clear()


def _layer_modules() -> dict[str, Any]:
    return modules_loaded_from(LAYER_PYTHON_DIR.resolve())


def _forget_layer_modules() -> dict[str, Any]:
    """Makes the next import of the shared layer a cold start: its settings and clients cached by an earlier stack
    in this process (another moto, other queue URLs) must not leak into this one's handlers. Returns what it
    removed, for stop() to put back."""
    removed = _layer_modules()
    for name in removed:
        del sys.modules[name]
    return removed


def _restore_layer_modules(before: dict[str, Any]) -> None:
    # This stack's modules hold clients bound to its moto, which stop() ends: code in the same process that
    # imported the layer before the stack started must find its own modules again, not these.
    for name in _layer_modules():
        del sys.modules[name]
    sys.modules.update(before)


class PortInUse(RuntimeError):
    """A port the local stack needs is taken (often by another `make run`)."""


def ensure_port_free(host: str, port: int, setting: str) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers bind: a port left in TIME_WAIT by an earlier run is free, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortInUse(
                f"port {port} on {host} is in use (is another `make run` running?); stop it or set {setting}"
            ) from error


def _reset_moto(endpoint: str) -> None:
    # moto keeps its state in module globals shared by every server in the process: wipe it, so the next
    # stack started in this process (the next test) begins with no tables, queues or messages.
    urllib3.request("POST", f"{endpoint}/moto-api/reset", timeout=5.0, retries=False)


def _wait_until_answers(url: str, timeout: float = _READY_TIMEOUT_SECONDS) -> None:
    """Returns once url answers HTTP at all (any status): the server behind it is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib3.request("GET", url, timeout=2.0, retries=False)
            return
        except urllib3.exceptions.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class LocalStack:
    """Starts and stops everything a local Concierge needs; use as a context manager or start()/stop().

    `handlers` replaces loading functions/*/app.py (for tests that put doubles at the Lambda boundary)."""

    def __init__(self, config: StackConfig | None = None, *, handlers: Mapping[str, Handler] | None = None) -> None:
        self.config = config or StackConfig()
        self._template = load_template()
        self._specs = functions(self._template)
        self._injected_handlers = handlers
        self._layer_before: dict[str, Any] | None = None
        # Filled after the API is up: the handlers' environment needs the API's and WAHA's URLs first.
        self.handlers: dict[str, Handler] = {}
        self.resources: LocalResources | None = None
        self.aws_endpoint: str | None = None
        self.api: LocalApi | None = None
        self.api_url: str | None = None
        self.webhook_url: str | None = None
        self.waha_url: str | None = None
        self.simulator: Any = None
        # Bedrock Runtime for the functions: the Converse simulator unless bedrock_endpoint_url names one.
        self.converse_sim: Any = None
        self.bedrock_url: str | None = None
        self.pollers: list[QueuePoller] = []
        # What the template's Environment blocks resolve to here (secrets are set apart, see below).
        self.function_environment: dict[str, str] = {}
        self._moto: Any = None
        self._env = EnvironmentPatch()
        self._session: boto3.Session | None = None
        self.staff_pool: StaffPool | None = None
        # The staff console's usage-plan key: the authorizer hands it to the API for signed-in staff.
        self.staff_usage_key = secrets.token_urlsafe(24)

    @property
    def api_key(self) -> str | None:
        return self.config.api_key

    def start(self) -> LocalStack:
        # Checked before anything starts: moto's server thread dies on a taken port while its start() waits
        # for it forever, and a half-started stack is harder to read than one clear message.
        ensure_port_free(self.config.api_host, self.config.api_port, "API_PORT")
        if not self.config.aws_endpoint_url:
            ensure_port_free("127.0.0.1", self.config.moto_port, "MOTO_PORT")
        if not self.config.waha_host:
            ensure_port_free("127.0.0.1", self.config.waha_sim_port, "WAHA_SIM_PORT")
        if not self.config.bedrock_endpoint_url:
            ensure_port_free("127.0.0.1", self.config.converse_sim_port, "CONVERSE_SIM_PORT")
        try:
            self._start_aws()
            # The API's port is reserved first (the simulator and the handlers need its URL) but opened last,
            # when every handler is loaded and WAHA answers: the first request a client gets through is served.
            self._bind_api()
            self._start_waha()
            self._start_converse_sim()
            if self.simulator is not None:
                _wait_until_answers(f"{self.waha_url}/")
            self._set_function_environment()
            if self._injected_handlers is not None:
                # The API's authorizers belong to API Gateway rather than to the functions a test replaces.
                authorizers = {route.authorizer for route in self.api.routes if route.authorizer} - set(
                    self._injected_handlers
                )
                self.handlers.update(load_handlers([self._specs[logical_id] for logical_id in sorted(authorizers)]))
                self.handlers.update(self._injected_handlers)
            else:
                self._layer_before = _forget_layer_modules()
                self.handlers.update(load_handlers(self._specs))
            self._start_pollers()
            assert self.api is not None
            self.api.start()
            _wait_until_answers(f"{self.api_url}/")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops what was started, consumers first; safe to call twice or after a failed start()."""
        for poller in self.pollers:
            self._quietly(poller.stop)
        self.pollers = []
        if self.api is not None:
            self._quietly(self.api.stop)
            self.api = None
        if self.simulator is not None:
            self._quietly(self.simulator.stop)
            self.simulator = None
        if self.converse_sim is not None:
            self._quietly(self.converse_sim.stop)
            self.converse_sim = None
        if self._moto is not None:
            endpoint = self.aws_endpoint
            if endpoint:
                self._quietly(lambda: _reset_moto(endpoint))
            self._quietly(self._moto.stop)
            self._moto = None
        self._env.restore()
        if self._layer_before is not None:
            _restore_layer_modules(self._layer_before)
            self._layer_before = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        """Invokes one function directly, as a schedule or `sam local invoke` would (e.g. the outbox sweep)."""
        spec = self._specs[function_id]
        context = LambdaContext(
            function_name=function_id,
            memory_limit_in_mb=spec.memory_size,
            timeout_seconds=spec.timeout,
            region=self.config.aws_region,
        )
        return invoke(self.handlers[function_id], event, context)

    @staticmethod
    def _quietly(stop: Callable[[], object]) -> None:
        try:
            stop()
        except Exception:
            LOG.exception("Stopping %r failed", stop)

    def _start_aws(self) -> None:
        config = self.config
        # Never real credentials against a local endpoint, and never a call that could reach real AWS unsigned.
        self._env.set_default("AWS_ACCESS_KEY_ID", _FAKE_CREDENTIAL)
        self._env.set_default("AWS_SECRET_ACCESS_KEY", _FAKE_CREDENTIAL)
        self._env.set("AWS_DEFAULT_REGION", config.aws_region)
        # Lambda sets both; some libraries (Powertools among them) read AWS_REGION.
        self._env.set("AWS_REGION", config.aws_region)
        if config.aws_endpoint_url:
            self.aws_endpoint = config.aws_endpoint_url
        else:
            from moto.server import ThreadedMotoServer

            from devstack import moto_dynamodb

            moto_dynamodb.install()
            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=config.moto_port, verbose=False)
            self._moto.start()
            host, port = self._moto.get_host_and_port()
            self.aws_endpoint = f"http://{host}:{port}"
        self._env.set("AWS_ENDPOINT_URL", self.aws_endpoint)
        self._session = boto3.Session(region_name=config.aws_region)
        self.resources = create_resources(config.resource_prefix, self._session)
        self._apply_queue_overrides()
        self.staff_pool = create_staff_pool(
            self._session, self.aws_endpoint, config.staff_email, config.staff_password, config.resource_prefix
        )

    def _consumed_queues(self) -> list[str]:
        return sorted({source.queue_logical_id for source in sqs_event_sources(self._specs)})

    def _apply_queue_overrides(self) -> None:
        assert self.resources is not None and self._session is not None
        config = self.config
        sqs = self._session.client("sqs")
        if config.visibility_timeout_override is not None:
            for logical_id in self._consumed_queues():
                sqs.set_queue_attributes(
                    QueueUrl=self.resources.queue_urls[logical_id],
                    Attributes={"VisibilityTimeout": str(config.visibility_timeout_override)},
                )
        if config.redrive_max_receive_override is not None:
            for logical_id in resources_of_type("AWS::SQS::Queue", self._template):
                url = self.resources.queue_urls[logical_id]
                response = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
                attributes = response.get("Attributes", {})
                if "RedrivePolicy" not in attributes:
                    continue
                policy = json.loads(attributes["RedrivePolicy"])
                policy["maxReceiveCount"] = config.redrive_max_receive_override
                sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(policy)})

    def _bind_api(self) -> None:
        self.api = LocalApi(
            self.handlers,
            self.config.api_host,
            self.config.api_port,
            self.config.api_key,
            self._template,
            throttling=self.config.api_throttling,
            usage_keys=(self.staff_usage_key,),
        )
        self.api_url = self.api.bind()
        self.webhook_url = self.api_url + route_for(WEBHOOK_FUNCTION_ID, self._template).path

    def _parameter(self, name: str, configured: str | None) -> str:
        value = configured or parameter_default(name, self._template)
        if value is None:
            raise ValueError(f"template parameter {name} has no default and no local value")
        return value

    def _start_waha(self) -> None:
        config = self.config
        if config.waha_host:
            self.waha_url = config.waha_host.rstrip("/")
            return
        # Imported here: a run against a real WAHA does not need the simulator (nor its `concierge` import).
        ensure_layer_on_path()
        from devstack.waha_sim import WahaSimulator

        self.simulator = WahaSimulator(
            host="127.0.0.1",
            port=config.waha_sim_port,
            api_key=config.waha_api_key,
            webhook_url=self.webhook_url,
            webhook_hmac_key=config.waha_webhook_hmac_key,
            session=self._parameter("WahaSession", config.waha_session),
            default_region=self._parameter("DefaultPhoneRegion", config.default_phone_region),
            ack_delivered_seconds=config.waha_sim_ack_delivered_seconds,
            ack_read_seconds=config.waha_sim_ack_read_seconds,
            files_lifetime_seconds=config.waha_sim_files_lifetime_seconds,
            not_on_whatsapp=config.waha_sim_not_on_whatsapp,
        )
        self.waha_url = self.simulator.start().rstrip("/")

    def _start_converse_sim(self) -> None:
        if self.config.bedrock_endpoint_url:
            self.bedrock_url = self.config.bedrock_endpoint_url.rstrip("/")
            return
        from devstack.converse_sim import ConverseSimulator

        self.converse_sim = ConverseSimulator(host="127.0.0.1", port=self.config.converse_sim_port)
        self.bedrock_url = self.converse_sim.start().rstrip("/")

    def _set_function_environment(self) -> None:
        assert self.resources is not None
        config = self.config
        resolver = TemplateEnvironment(
            template=self._template,
            resources=self.resources,
            parameters={
                # A setting the template passes straight from a parameter (NAME: !Ref Param) is read from
                # the local environment under NAME, as the README's configuration table lists them.
                **self._parameters_from_environment(),
                "WahaHost": self.waha_url,
                "WahaApiPath": config.waha_api_path,
                "WahaSession": config.waha_session,
                "DefaultPhoneRegion": config.default_phone_region,
                "LogLevel": config.log_level,
                "KnowledgeFile": config.knowledge_file,
                # Deployed, these name SSM parameters; locally the values below are passed directly.
                "WahaWebhookHmacKeyParameter": None,
                "WahaApiKeyParameter": None,
            },
            region=config.aws_region,
            stack_name=config.resource_prefix,
            local_ids=self.staff_pool.local_ids() if self.staff_pool else {},
        )
        merged: dict[str, str] = {}
        for spec in self._specs.values():
            for name, value in resolver.variables(spec).items():
                if name in merged and merged[name] != value:
                    # One process, one environment: the first function's value wins for all of them.
                    LOG.warning("%s sets %s=%r but another function set %r", spec.logical_id, name, value, merged[name])
                    continue
                merged[name] = value
        if config.redrive_max_receive_override is not None:
            merged[MAX_RECEIVE_COUNT_VARIABLE] = str(config.redrive_max_receive_override)
            merged[MEDIA_MAX_RECEIVE_COUNT_VARIABLE] = str(config.redrive_max_receive_override)
        if "STAFF_SIGN_IN_URL" in merged:
            # The console signs in against moto's cognito-idp here, Cognito's regional endpoint deployed.
            merged["STAFF_SIGN_IN_URL"] = f"{self.aws_endpoint}/"
        if self.bedrock_url:
            # boto3's own setting for one service: Bedrock Runtime here, moto (AWS_ENDPOINT_URL) for the rest.
            merged["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = self.bedrock_url
        for name, value in merged.items():
            self._env.set(name, value)
        self.function_environment = merged
        # The secrets' values themselves (concierge.secrets reads NAME before NAME_PARAM); unset when not given.
        self._env.set("WAHA_API_KEY", config.waha_api_key)
        self._env.set("WAHA_WEBHOOK_HMAC_KEY", config.waha_webhook_hmac_key)
        self._env.set("WAHA_API_KEY_PARAM", None)
        self._env.set("WAHA_WEBHOOK_HMAC_KEY_PARAM", None)
        # The authorizer's: moto serves the pool's keys at its own address, and the staff key goes by value.
        self._env.set("STAFF_JWKS_URL", self.staff_pool.jwks_url if self.staff_pool else None)
        self._env.set("STAFF_USAGE_KEY", self.staff_usage_key)

    def _parameters_from_environment(self) -> dict[str, str]:
        parameters = self._template.get("Parameters", {})
        found: dict[str, str] = {}
        for spec in self._specs.values():
            for name, raw in spec.environment.items():
                reference = raw.get("Ref") if isinstance(raw, Mapping) else None
                value = self._env.original(name)
                if isinstance(reference, str) and reference in parameters and value:
                    found[reference] = value
        return found

    def _start_pollers(self) -> None:
        assert self.resources is not None and self._session is not None
        for source in sqs_event_sources(self._specs):
            spec = self._specs[source.function_id]
            handler = self.handlers.get(source.function_id)
            if handler is None:
                LOG.warning("No handler for %s: %s is not polled", source.function_id, source.queue_logical_id)
                continue
            poller = QueuePoller(
                handler,
                self.resources.queue_urls[source.queue_logical_id],
                self.resources.queue_arns[source.queue_logical_id],
                source.batch_size,
                spec.timeout,
                source.function_id,
                self._session.client("sqs"),
                report_batch_item_failures=source.report_batch_item_failures,
                memory_size=spec.memory_size,
            )
            poller.start()
            self.pollers.append(poller)
