"""template.yaml holds the deployment's promises: layout, architecture, secrets and auth."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from devstack.template import REPO_ROOT, functions, load_template, resource_properties


def test_layer_content_is_the_folder_lambda_puts_on_sys_path() -> None:
    """sam build copies the layer's ContentUri into python/, so the package must sit at its top."""
    template = load_template()
    layer = template["Resources"]["CommonLayer"]
    content = REPO_ROOT / layer["Properties"]["ContentUri"]

    assert (content / "concierge" / "__init__.py").is_file()
    assert (content / "requirements.txt").is_file()
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}


def test_every_function_is_python313_on_arm64_with_a_handler() -> None:
    """Each function's code has its lambda_handler and runs on python3.13, arm64."""
    globals_ = load_template()["Globals"]["Function"]

    assert (globals_["Runtime"], globals_["Architectures"]) == ("python3.13", ["arm64"])
    for spec in functions().values():
        module, _, name = spec.handler.rpartition(".")
        assert f"def {name}(" in (spec.code_dir / f"{module}.py").read_text(), spec.logical_id


def test_queue_visibility_covers_six_sender_timeouts() -> None:
    """Lambda's SQS guidance: visibility at least six times the consumer's timeout, or records run twice."""
    sender = functions()["SendWhatsappFunction"]

    assert resource_properties("OutboundQueue")["VisibilityTimeout"] >= 6 * sender.timeout


def test_secrets_are_references_without_defaults() -> None:
    """The webhook's HMAC key is a required SSM parameter name; no secret has a default value."""
    parameters = load_template()["Parameters"]

    assert "Default" not in parameters["WahaWebhookHmacKeyParameter"]
    assert parameters["WahaApiKeyParameter"]["Default"] == ""
    for name, parameter in parameters.items():
        if "Key" in name or "Secret" in name:
            assert parameter.get("Default", "") == "", name


def test_only_the_webhook_and_the_consoles_files_are_open_without_an_api_key() -> None:
    """Every other route needs the API key (or a staff token, through the authorizer); the webhook is guarded by
    WAHA's HMAC instead, and the console's page and settings and the OpenAPI document hold nothing secret."""
    open_routes = []
    for spec in functions().values():
        for event in spec.events.values():
            if event["Type"] == "Api" and not event["Properties"].get("Auth", {}).get("ApiKeyRequired"):
                open_routes.append(event["Properties"]["Path"])

    assert sorted(open_routes) == ["/api/v1/openapi.json", "/api/v1/waha/webhook", "/console", "/console/{proxy+}"]


# The stack's share of the account's concurrency (docs/architecture.md, Security). An account starts with 1,000 and
# Lambda keeps 100 of them unreserved, so reservations beyond 900 fail the deployment; ours stay far below.
CONCURRENCY_BUDGET = 100


def test_every_function_has_a_reserved_concurrency_within_the_budget() -> None:
    """A flood (forged webhooks, a runaway client) can use up only its function's share of the account."""
    specs = functions()
    reserved = {logical_id: spec.reserved_concurrency for logical_id, spec in specs.items()}

    assert all(isinstance(limit, int) and limit >= 1 for limit in reserved.values()), reserved
    assert sum(reserved.values()) <= CONCURRENCY_BUDGET, reserved


def test_an_sqs_consumer_reserves_at_least_its_maximum_concurrency() -> None:
    """Lambda throttles an SQS poller whose function may not run as many copies as its MaximumConcurrency asks."""
    for spec in functions().values():
        for event in spec.events.values():
            scaling = event.get("Properties", {}).get("ScalingConfig", {})
            if event["Type"] == "SQS" and "MaximumConcurrency" in scaling:
                assert spec.reserved_concurrency >= scaling["MaximumConcurrency"], spec.logical_id


def test_every_route_without_an_api_key_has_a_stage_throttle_of_its_own() -> None:
    """The webhook has no usage plan behind it (no API key): its method settings limit it, whoever calls."""
    from devstack.api import api_routes
    from devstack.throttling import Throttles

    template = load_template()
    open_routes = [route for route in api_routes(template) if not route.api_key_required]

    assert open_routes
    for route in open_routes:
        throttles = Throttles.of_api(resource_properties(route.api_id, template))
        for method in route.methods:
            limit = throttles.method_limit(route.path, method)
            assert limit is not None, (route.path, method)
            rate, burst = limit
            assert 0 < rate <= 100 and 0 < burst <= 200, (route.path, limit)


@pytest.mark.parametrize(
    ("response_type", "status"),
    [
        ("INVALID_API_KEY", 403),
        ("MISSING_AUTHENTICATION_TOKEN", 404),
        ("THROTTLED", 429),
        ("QUOTA_EXCEEDED", 429),
        ("DEFAULT_4XX", 400),
        ("DEFAULT_5XX", 502),
    ],
)
def test_api_gateways_own_answers_use_our_error_format(response_type: str, status: int) -> None:
    """A missing key, an unknown route, throttling or a failed integration answer {"error", "message", "details"}
    as our functions do, rendered from the template's GatewayResponses as API Gateway renders them."""
    from devstack.gateway_responses import GatewayResponses

    responses = resource_properties("ConciergeApi")["GatewayResponses"]
    assert response_type in responses

    answer = GatewayResponses(responses).answer(response_type, message='API Gateway\'s "own" message', status=status)

    body = json.loads(answer.body)
    assert answer.status == status
    assert set(body) == {"error", "message", "details"}
    assert isinstance(body["error"], str) and body["error"].islower() and " " not in body["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert body["details"] == []


def test_the_readme_shows_sam_local_invoke_with_every_sample_event() -> None:
    """Each function's sample event (events/<its folder>.json) is in the README's `sam local invoke` lines."""
    readme = (REPO_ROOT / "README.md").read_text()

    for logical_id, spec in functions().items():
        assert (REPO_ROOT / "events" / f"{spec.code_dir.name}.json").is_file(), logical_id
        assert f"-e events/{spec.code_dir.name}.json {logical_id}" in readme, logical_id


def test_the_security_section_states_the_reserved_concurrency_in_force() -> None:
    """docs/architecture.md gives the total the template reserves (and each function's figure)."""
    specs = functions()
    architecture = (REPO_ROOT / "docs" / "architecture.md").read_text()
    total = sum(spec.reserved_concurrency or 0 for spec in specs.values())

    assert f"Together {total} of the account's concurrency" in architecture
    assert all(logical_id in architecture for logical_id in specs)


def test_bedrock_is_optional_and_limited_to_invoking_the_one_model() -> None:
    """AiModelId (empty by default) reaches the answering function as AI_MODEL_ID; only when it is set may that
    function call bedrock:InvokeModel (which authorises Converse), and only on that foundation model."""
    template = load_template()
    answer_guest = template["Resources"]["AnswerGuestFunction"]["Properties"]

    assert template["Parameters"]["AiModelId"]["Default"] == ""
    assert template["Conditions"]["HasAiModel"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AiModelId"}, ""]}]}
    assert answer_guest["Environment"]["Variables"]["AI_MODEL_ID"] == {"Ref": "AiModelId"}
    guarded = [
        statement["Fn::If"]
        for policy in answer_guest["Policies"]
        for statement in policy.get("Statement", [])
        if "Fn::If" in statement and "bedrock" in json.dumps(statement)
    ]
    assert guarded == [
        [
            "HasAiModel",
            {
                "Effect": "Allow",
                "Action": ["bedrock:InvokeModel"],
                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/${AiModelId}"},
            },
            {"Ref": "AWS::NoValue"},
        ]
    ]
    others = {name: resource for name, resource in template["Resources"].items() if name != "AnswerGuestFunction"}
    assert "bedrock:" not in json.dumps(others)


# Scheduled jobs: nobody waits for their cold start, so they keep no snapshot.
WITHOUT_SNAPSHOT = {"SweepOutboxFunction", "CloseStaysFunction", "ExpireClosedStaysFunction"}


def _deployed(snap_start: str) -> dict[str, Any]:
    """The template as CloudFormation receives it after SAM's transform, deployed with SnapStart on or off."""
    from samcli.commands.validate.lib.exceptions import InvalidSamDocumentException
    from samcli.lib.translate.sam_template_validator import SamTemplateValidator
    from samcli.yamlhelper import yaml_parse

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    parameters = {"WahaHost": "https://waha.example.com", "WahaWebhookHmacKeyParameter": "/k", "SnapStart": snap_start}
    validator = SamTemplateValidator(
        copy.deepcopy(load_template()), NoManagedPolicies(), region="us-east-1", parameter_overrides=parameters
    )
    try:
        return yaml_parse(validator.get_translated_template_if_valid())
    except InvalidSamDocumentException as error:
        pytest.fail(f"SAM refuses the template with SnapStart {snap_start}: {error}")


def _lint_matches(snap_start: str) -> list[str]:
    """What `sam validate --lint --region us-east-1` reports (it runs cfn-lint this way), SnapStart's default set."""
    from cfnlint.api import ManualArgs, lint

    template = copy.deepcopy(load_template())
    template["Parameters"]["SnapStart"]["Default"] = snap_start
    return [str(match) for match in lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))]


@pytest.mark.parametrize("snap_start", ["off", "on"])
def test_snapstart_is_an_option_the_template_validates_with_either_way(snap_start: str) -> None:
    """SnapStart (off by default) snapshots the published versions of every function but the schedules; either way
    each function publishes versions behind the alias `live`, which the API, its authorizer and the queues invoke."""
    template = load_template()
    deployed = _deployed(snap_start)["Resources"]
    functions_ = {name: resource for name, resource in deployed.items() if resource["Type"] == "AWS::Lambda::Function"}
    aliases = {
        resource["Properties"]["FunctionName"]["Ref"]: name
        for name, resource in deployed.items()
        if resource["Type"] == "AWS::Lambda::Alias"
    }
    condition = template["Conditions"]["UseSnapStart"]["Fn::Equals"]

    assert template["Parameters"]["SnapStart"]["Default"] == "off"
    assert _lint_matches(snap_start) == []
    assert condition == [{"Ref": "SnapStart"}, "on"]
    for name, function in functions_.items():
        apply_on = function["Properties"]["SnapStart"]["ApplyOn"]
        if isinstance(apply_on, dict):
            use_snapstart, when_on, when_off = apply_on["Fn::If"]
            assert use_snapstart == "UseSnapStart"
            apply_on = when_on if snap_start == "on" else when_off
        wanted = "PublishedVersions" if snap_start == "on" and name not in WITHOUT_SNAPSHOT else "None"
        assert apply_on == wanted, name
        assert deployed[aliases[name]]["Properties"]["Name"] == "live"
    # Everything that invokes a function: the API's integrations and authorizer, queues, schedules, permissions.
    invokers = json.dumps(
        {
            name: resource
            for name, resource in deployed.items()
            if resource["Type"]
            in (
                "AWS::ApiGateway::RestApi",
                "AWS::Lambda::EventSourceMapping",
                "AWS::Scheduler::Schedule",
                "AWS::Lambda::Permission",
            )
        }
    )
    for name in functions_:
        assert f"{name}Aliaslive" in invokers, f"nothing invokes {name}'s alias"
        assert f'"{name}"' not in invokers and "${" + name not in invokers.replace(f"${{{name}Aliaslive}}", ""), (
            f"{name} is invoked without its alias"
        )
