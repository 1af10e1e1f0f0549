"""A local API Gateway (REST, proxy integration) for the template's `Type: Api` events.

The event a handler receives is built by SAM CLI's own code (the one behind `sam local start-api`), so the
handlers see here what they see there; on top of it this adds what `sam local` leaves out and the deployed
API does: API keys on routes with `ApiKeyRequired`, a fresh request id per request, a body that is not UTF-8 text
handed over base64-encoded, API Gateway's own answers shaped by the template's `GatewayResponses`, a route's
Lambda REQUEST authorizer run before its function (with the API key it hands over when the API's key source is
AUTHORIZER, and its context in the function's `requestContext.authorizer`), and (when asked) the throttling of
the stage's `MethodSettings` and the usage plan.
"""

from __future__ import annotations

import fnmatch
import hmac
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request
from samcli.local.apigw.event_constructor import construct_v1_event
from samcli.local.apigw.exceptions import LambdaResponseParseException
from samcli.local.apigw.local_apigw_service import CatchAllPathConverter, LocalApigwService
from samcli.local.apigw.path_converter import PathConverter
from samcli.local.apigw.route import Route
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from devstack import gateway_responses
from devstack.functions import Handler, invoke
from devstack.gateway_responses import GatewayResponses
from devstack.lambda_context import LOCAL_ACCOUNT_ID, LambdaContext
from devstack.template import FunctionSpec, functions, load_template
from devstack.throttling import Throttles

LOG = logging.getLogger(__name__)

# The name SAM gives the API it creates for Api events that name no RestApiId, and that API's stage.
_IMPLICIT_API_ID = "ServerlessRestApi"
_IMPLICIT_STAGE_NAME = "Prod"
# Lambda's defaults, for a handler registered under a name the template does not have.
_DEFAULT_TIMEOUT_SECONDS = 3
_DEFAULT_MEMORY_MB = 128
# API Gateway refuses request bodies over 10 MB (413) before any integration runs.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
# Binary media types that match every request: the body reaches the handler base64-encoded.
_ANY_MEDIA_TYPE = "*/*"


@dataclass(frozen=True)
class ApiRoute:
    """One `Type: Api` event: which function answers which path and methods, and under which API settings."""

    function_id: str
    path: str
    methods: tuple[str, ...]
    api_key_required: bool
    stage_name: str
    binary_media_types: tuple[str, ...] = ()
    stage_variables: Mapping[str, str] | None = None
    api_id: str = _IMPLICIT_API_ID
    # The logical id of the function behind the route's Lambda REQUEST authorizer, if it has one.
    authorizer: str | None = None
    # Where API Gateway takes the API key from: the x-api-key header, or the authorizer's usageIdentifierKey.
    api_key_source: str = "HEADER"

    @property
    def flask_path(self) -> str:
        return PathConverter.convert_path_to_flask(self.path)


def _api_id(event_properties: Mapping[str, Any]) -> str:
    rest_api_id = event_properties.get("RestApiId")
    if rest_api_id is None:
        return _IMPLICIT_API_ID
    if isinstance(rest_api_id, Mapping) and "Ref" in rest_api_id:
        return rest_api_id["Ref"]
    raise ValueError(f"RestApiId must be a Ref to an AWS::Serverless::Api, got {rest_api_id!r}")


def _authorizer_function(api_auth: Mapping[str, Any], name: str) -> str:
    config = api_auth.get("Authorizers", {}).get(name)
    if config is None:
        raise ValueError(f"authorizer {name} is not defined in the API's Auth.Authorizers")
    if config.get("FunctionPayloadType") != "REQUEST":
        raise ValueError(f"authorizer {name}: the local API runs REQUEST authorizers only")
    arn = config["FunctionArn"]
    # The function itself (!GetAtt <Function>.Arn) or its AutoPublishAlias (!Ref <Function>.Alias): the same code here.
    alias = arn.get("Ref") if isinstance(arn, Mapping) else None
    if isinstance(alias, str) and alias.endswith(".Alias"):
        return alias.removesuffix(".Alias")
    target = arn.get("Fn::GetAtt") if isinstance(arn, Mapping) else None
    if target is None:
        raise ValueError(f"authorizer {name}: FunctionArn must be !GetAtt <Function>.Arn or !Ref <Function>.Alias")
    return target[0] if isinstance(target, list) else str(target).split(".", 1)[0]


def _methods(function_id: str, method: str) -> tuple[str, ...]:
    # Route normalises methods the way sam local does: upper case, and ANY expanded to every method.
    return tuple(Route(function_name=function_id, path="/", methods=[method]).methods)


def api_routes(template: Mapping[str, Any] | None = None) -> list[ApiRoute]:
    """Every `Type: Api` event of the template's functions, with its API's stage and API-key default applied."""
    template = template or load_template()
    resources = template["Resources"]
    routes = []
    for spec in functions(template).values():
        for event in spec.events.values():
            if event.get("Type") != "Api":
                continue
            properties = event["Properties"]
            api_id = _api_id(properties)
            api_properties = resources.get(api_id, {}).get("Properties", {})
            api_auth = api_properties.get("Auth", {})
            event_auth = properties.get("Auth", {})
            # An event's own ApiKeyRequired overrides its API's default, as in SAM's transform.
            key_required = event_auth.get("ApiKeyRequired", api_auth.get("ApiKeyRequired", False))
            authorizer_name = event_auth.get("Authorizer", api_auth.get("DefaultAuthorizer"))
            authorizer = (
                _authorizer_function(api_auth, authorizer_name)
                if authorizer_name and authorizer_name not in {"NONE", "AWS_IAM"}
                else None
            )
            routes.append(
                ApiRoute(
                    function_id=spec.logical_id,
                    path=properties["Path"],
                    methods=_methods(spec.logical_id, properties["Method"]),
                    api_key_required=bool(key_required),
                    stage_name=api_properties.get("StageName", _IMPLICIT_STAGE_NAME),
                    binary_media_types=tuple(
                        media_type.replace("~1", "/") for media_type in api_properties.get("BinaryMediaTypes", [])
                    ),
                    stage_variables=api_properties.get("Variables"),
                    api_id=api_id,
                    authorizer=authorizer,
                    api_key_source=str(api_properties.get("ApiKeySourceType", "HEADER")),
                )
            )
    return routes


def route_for(function_id: str, template: Mapping[str, Any] | None = None) -> ApiRoute:
    """The single Api route of a function (e.g. to print the webhook URL); fails when there is not exactly one."""
    matches = [route for route in api_routes(template) if route.function_id == function_id]
    if len(matches) != 1:
        raise LookupError(f"{function_id} has {len(matches)} Api events, expected 1")
    return matches[0]


class _Http11RequestHandler(WSGIRequestHandler):
    # API Gateway speaks HTTP/1.1 (keep-alive); sam local switches its server to it for the same reason.
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Our own logger, without werkzeug's terminal colours: `python -m devstack` quiets the "werkzeug" logger
        # (moto's server logs every AWS call through it) and this keeps the API's access log.
        LOG.info('%s "%s" %s', self.address_string(), self.requestline, code)


def _api_properties(template: Mapping[str, Any], api_id: str) -> Mapping[str, Any]:
    return template["Resources"].get(api_id, {}).get("Properties", {})


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class LocalApi:
    """Serves the template's Api routes on host:port from a background thread, invoking handlers in-process.

    `handlers` maps logical ids to handlers and is read on every request. bind() reserves the port (and so fixes
    the URL) without accepting connections; start() opens it. The stack binds first, because the handlers'
    environment needs this API's URL, and opens the port last, once every handler is loaded: a client that gets a
    connection gets an answer from its function. A route whose function has no handler answers 502, as API
    Gateway does when its integration cannot be invoked.

    With `throttling`, requests over the stage's MethodSettings limits or the usage plan's per-key throttle are
    answered 429, as deployed."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        template: Mapping[str, Any] | None = None,
        *,
        throttling: bool = False,
        usage_keys: tuple[str, ...] = (),
    ) -> None:
        self._handlers = handlers
        # Further keys of the usage plan (the staff console's), which an authorizer may hand over.
        self._usage_keys = usage_keys
        self._host = host
        self._requested_port = port
        self._api_key = api_key
        template = template or load_template()
        self._routes = api_routes(template)
        self._specs: dict[str, FunctionSpec] = functions(template)
        self._by_endpoint = {(route.flask_path, method): route for route in self._routes for method in route.methods}
        api_ids = {route.api_id for route in self._routes}
        self._responses = {api_id: GatewayResponses.of_api(_api_properties(template, api_id)) for api_id in api_ids}
        # A request that matches no route belongs to no API; with one API (ours) it is that API's answer.
        self._unrouted_responses = self._responses[next(iter(api_ids))] if len(api_ids) == 1 else GatewayResponses()
        self._throttles = (
            {api_id: Throttles.of_api(_api_properties(template, api_id)) for api_id in api_ids} if throttling else {}
        )
        self._app = self._create_app()
        self._socket: socket.socket | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def routes(self) -> list[ApiRoute]:
        return list(self._routes)

    @property
    def port(self) -> int:
        if self._server is not None:
            return self._server.server_address[1]
        if self._socket is not None:
            return self._socket.getsockname()[1]
        raise RuntimeError("LocalApi is not bound")

    @property
    def url(self) -> str:
        """Base URL; paths are served at the root, without the stage, as by sam local."""
        # A server bound to every interface is still reached, and printed, as localhost.
        host = "127.0.0.1" if self._host in {"", "0.0.0.0", "::"} else self._host  # noqa: S104
        return f"http://{host}:{self.port}"

    def _create_app(self) -> Flask:
        app = Flask(__name__)
        # {proxy+} paths: sam local's converter lets one segment capture slashes.
        app.url_map.converters["path"] = CatchAllPathConverter
        app.url_map.strict_slashes = False
        for route in self._routes:
            # The endpoint name is the path itself: construct_v1_event reads `resource` back from it.
            app.add_url_rule(
                route.flask_path,
                endpoint=route.flask_path,
                view_func=self._handle,
                methods=list(route.methods),
                provide_automatic_options=False,
            )
        app.config["MAX_CONTENT_LENGTH"] = MAX_PAYLOAD_BYTES
        app.register_error_handler(HTTPException, self._http_error)
        app.register_error_handler(Exception, self._local_api_error)
        return app

    def _gateway_answer(
        self, response_type: str, responses: GatewayResponses | None = None, status: int | None = None
    ) -> Response:
        answer = (responses or self._unrouted_responses).answer(response_type, status=status)
        return Response(answer.body, status=answer.status, headers=answer.headers)

    def _http_error(self, error: HTTPException) -> Response:
        # API Gateway REST answers an unknown path and a known path's unknown method alike: no such route.
        if error.code in (404, 405):
            return self._gateway_answer(gateway_responses.MISSING_AUTHENTICATION_TOKEN)
        if error.code == 413:
            return self._gateway_answer(gateway_responses.REQUEST_TOO_LARGE)
        # Anything else werkzeug refuses before routing (a malformed request): the 4xx it chose, in the API's format.
        status = error.code or 400
        kind = gateway_responses.BAD_REQUEST if status < 500 else gateway_responses.INTEGRATION_ERROR
        return self._gateway_answer(kind, status=status)

    def _local_api_error(self, error: Exception) -> Response:
        LOG.exception("The local API failed on %s %s", request.method, request.path)
        return self._gateway_answer(gateway_responses.INTEGRATION_ERROR, status=500)

    def bind(self) -> str:
        """Reserves host:port without accepting connections yet (they are refused until start()); returns the
        base URL. Port 0 picks a free port."""
        if self._socket is not None or self._server is not None:
            raise RuntimeError("LocalApi is already bound")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        bound = socket.socket(family, socket.SOCK_STREAM)
        try:
            # As werkzeug binds: a port left in TIME_WAIT by an earlier run is free.
            bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            bound.bind((self._host, self._requested_port))
        except BaseException:
            bound.close()
            raise
        self._socket = bound
        return self.url

    def start(self) -> str:
        """Opens the port (binding it first if bind() was not called) and starts serving; returns the base URL."""
        if self._server is not None:
            raise RuntimeError("LocalApi is already started")
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        # werkzeug serves a socket it is given without binding it again; listen() is what opens the port.
        self._server = make_server(
            self._host,
            self.port,
            self._app,
            threaded=True,
            request_handler=_Http11RequestHandler,
            fd=self._socket.fileno(),
        )
        self._server.socket.listen(128)
        # The server holds its own duplicate of the descriptor.
        self._socket.close()
        self._socket = None
        self._thread = threading.Thread(
            # A short poll interval: stop() waits for the serve loop to notice, and tests stop many servers.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="local-api",
            daemon=True,
        )
        self._thread.start()
        LOG.info("Local API listening on %s", self.url)
        return self.url

    def stop(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> LocalApi:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _api_key_accepted(self, sent: str | None) -> bool:
        # With no key configured nothing can match, as with a deployed API whose usage plan has no keys.
        keys = [key for key in (self._api_key, *self._usage_keys) if key]
        if sent is None:
            return False
        return any(hmac.compare_digest(sent.encode(), key.encode()) for key in keys)

    @staticmethod
    def _method_arn(route: ApiRoute, event: Mapping[str, Any]) -> str:
        region = os.environ.get("AWS_REGION", "us-east-1")
        return (
            f"arn:aws:execute-api:{region}:{LOCAL_ACCOUNT_ID}:{route.api_id}/{route.stage_name}/"
            f"{event['httpMethod']}{event['path']}"
        )

    def _authorize(self, route: ApiRoute, responses: GatewayResponses) -> Response | tuple[dict[str, Any], str | None]:
        """Runs the route's REQUEST authorizer as API Gateway does: its refusal as the gateway's answer, or the
        context for the function and the API key it handed over."""
        assert route.authorizer is not None
        handler = self._handlers.get(route.authorizer)
        if handler is None:
            LOG.error("No handler loaded for the authorizer %s", route.authorizer)
            return self._gateway_answer(gateway_responses.AUTHORIZER_FAILURE, responses)
        proxy = self._build_event(route)
        method_arn = self._method_arn(route, proxy)
        event = {
            "type": "REQUEST",
            "methodArn": method_arn,
            **{
                name: proxy.get(name)
                for name in (
                    "resource",
                    "path",
                    "httpMethod",
                    "headers",
                    "multiValueHeaders",
                    "queryStringParameters",
                    "multiValueQueryStringParameters",
                    "pathParameters",
                    "stageVariables",
                    "requestContext",
                )
            },
        }
        try:
            result = invoke(handler, event, self._context(route.authorizer))
        except Exception as error:
            # API Gateway's contract: exactly "Unauthorized" is a 401; anything else a failed authorizer (500).
            if str(error) == "Unauthorized":
                return self._gateway_answer(gateway_responses.UNAUTHORIZED, responses)
            LOG.exception("The authorizer %s failed", route.authorizer)
            return self._gateway_answer(gateway_responses.AUTHORIZER_FAILURE, responses)
        statements = (result or {}).get("policyDocument", {}).get("Statement", [])

        def matches(statement: Mapping[str, Any]) -> bool:
            resources = statement.get("Resource", [])
            resources = [resources] if isinstance(resources, str) else resources
            return any(fnmatch.fnmatchcase(method_arn, pattern) for pattern in resources)

        denied = any(s.get("Effect") == "Deny" and matches(s) for s in statements)
        allowed = any(s.get("Effect") == "Allow" and matches(s) for s in statements)
        if denied or not allowed:
            return self._gateway_answer(gateway_responses.ACCESS_DENIED, responses)
        context = {key: value for key, value in (result.get("context") or {}).items() if value is not None}
        context["principalId"] = result.get("principalId")
        return context, result.get("usageIdentifierKey")

    def _build_event(
        self, route: ApiRoute, api_key: str | None = None, authorizer: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        binary_media_types = list(route.binary_media_types)
        if not _is_utf8(request.get_data(cache=True)):
            # A Lambda event is JSON, which cannot carry bytes that are not text: API Gateway hands such a body
            # over base64-encoded with isBase64Encoded, as for a binary media type (sam local answers 500 here).
            binary_media_types.append(_ANY_MEDIA_TYPE)
        event = construct_v1_event(
            request,
            self.port,
            binary_media_types,
            stage_name=route.stage_name,
            stage_variables=dict(route.stage_variables) if route.stage_variables else None,
            operation_name=None,
            api_type=Route.API,
        )
        context = event["requestContext"]
        # samcli's RequestContext takes requestId and the request time as default arguments, evaluated once at
        # import: every sam local event carries the same ones. API Gateway gives each request its own.
        now = datetime.now(UTC)
        context["requestId"] = str(uuid.uuid4())
        context["extendedRequestId"] = context["requestId"]
        context["requestTimeEpoch"] = int(time.time() * 1000)
        context["requestTime"] = now.strftime("%d/%b/%Y:%H:%M:%S +0000")
        if route.api_key_required and api_key is not None:
            # API Gateway tells the integration which key was used; sam local never sets it.
            context["identity"]["apiKey"] = api_key
        if authorizer is not None:
            context["authorizer"] = dict(authorizer)
        return event

    def _context(self, function_id: str) -> LambdaContext:
        spec = self._specs.get(function_id)
        return LambdaContext(
            function_name=function_id,
            memory_limit_in_mb=spec.memory_size if spec else _DEFAULT_MEMORY_MB,
            timeout_seconds=spec.timeout if spec else _DEFAULT_TIMEOUT_SECONDS,
        )

    def _handle(self, **_path_parameters: str) -> Response:
        # Path parameters reach the event through request.view_args inside construct_v1_event.
        route = self._by_endpoint[(request.endpoint, request.method)]
        responses = self._responses[route.api_id]
        api_key = request.headers.get("x-api-key")
        authorizer_context: dict[str, Any] | None = None
        if route.api_key_required and route.api_key_source == "HEADER" and not self._api_key_accepted(api_key):
            # A header key is checked before any authorizer runs.
            return self._gateway_answer(gateway_responses.INVALID_API_KEY, responses)
        if route.authorizer is not None:
            outcome = self._authorize(route, responses)
            if isinstance(outcome, Response):
                return outcome
            authorizer_context, usage_key = outcome
            if route.api_key_source == "AUTHORIZER":
                api_key = usage_key
                if route.api_key_required and not self._api_key_accepted(api_key):
                    return self._gateway_answer(gateway_responses.INVALID_API_KEY, responses)
        throttles = self._throttles.get(route.api_id)
        if throttles is not None and not throttles.admit(
            route.path, request.method, api_key if route.api_key_required else None
        ):
            return self._gateway_answer(gateway_responses.THROTTLED, responses)
        handler = self._handlers.get(route.function_id)
        if handler is None:
            LOG.error("No handler loaded for %s (%s %s)", route.function_id, request.method, route.path)
            return self._gateway_answer(gateway_responses.INTEGRATION_ERROR, responses)
        event = self._build_event(route, api_key if route.api_key_required else None, authorizer_context)
        try:
            result = invoke(handler, event, self._context(route.function_id))
        except Exception:
            # A raising, timed-out or unserialisable invoke is a failed integration: API Gateway answers 502.
            LOG.exception("%s failed for %s %s", route.function_id, request.method, request.path)
            return self._gateway_answer(gateway_responses.INTEGRATION_ERROR, responses)
        try:
            status, headers, body = LocalApigwService._parse_v1_payload_format_lambda_output(
                json.dumps(result), list(route.binary_media_types), request, Route.API
            )
        except LambdaResponseParseException:
            # API Gateway answers a malformed proxy response with a 502, and says why only in its logs.
            LOG.exception("%s returned a malformed proxy response: %r", route.function_id, result)
            return self._gateway_answer(gateway_responses.INTEGRATION_ERROR, responses)
        return LocalApigwService.service_response(body, headers, status)
