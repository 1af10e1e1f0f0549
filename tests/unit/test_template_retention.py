"""template.yaml's promises about what is kept and for how long: logs, access logs, erasure and retention."""

from __future__ import annotations

import json
import re
from typing import Any

from devstack.template import functions, load_template, resource_properties

# The access-log variables we allow: who called, what route (never the path, which holds user ids), the outcome.
ACCESS_LOG_VARIABLES = {
    "$context.requestId",
    "$context.requestTime",
    "$context.httpMethod",
    "$context.resourcePath",
    "$context.status",
    "$context.responseLength",
    "$context.responseLatency",
    "$context.integration.status",
    "$context.integrationLatency",
    "$context.error.responseType",
    "$context.error.messageString",
    "$context.identity.apiKeyId",
    "$context.identity.sourceIp",
    "$context.identity.userAgent",
    "$context.protocol",
}


def _ref(value: Any) -> str:
    assert isinstance(value, dict) and set(value) == {"Ref"}, value
    return value["Ref"]


def _log_groups() -> dict[str, dict[str, Any]]:
    resources = load_template()["Resources"]
    return {name: res for name, res in resources.items() if res["Type"] == "AWS::Logs::LogGroup"}


def test_every_function_logs_to_a_group_of_its_own_with_the_retention_parameter() -> None:
    """No function writes to a log group that keeps its logs forever (Lambda's own default)."""
    groups = _log_groups()
    used = []
    for logical_id in functions():
        logging_config = resource_properties(logical_id).get("LoggingConfig", {})
        assert "LogGroup" in logging_config, f"{logical_id} has no LoggingConfig.LogGroup"
        group = _ref(logging_config["LogGroup"])
        assert group in groups, logical_id
        used.append(group)
    assert len(used) == len(set(used)), "two functions share a log group"
    for group in used:
        assert _ref(groups[group]["Properties"]["RetentionInDays"]) == "LogRetentionDays", group


def test_log_retention_defaults_to_30_days_among_cloudwatchs_values() -> None:
    parameter = load_template()["Parameters"]["LogRetentionDays"]

    assert parameter["Default"] == 30
    assert 30 in parameter["AllowedValues"] and 0 not in parameter["AllowedValues"]


def test_api_access_log_has_no_bodies_and_no_paths() -> None:
    """The access log is on, kept LogRetentionDays, and its format names only allowed $context variables."""
    api = resource_properties("ConciergeApi")
    setting = api["AccessLogSetting"]
    destination = setting["DestinationArn"]["Fn::GetAtt"]
    log_format = setting["Format"]

    assert destination[1] == "Arn"
    assert _ref(_log_groups()[destination[0]]["Properties"]["RetentionInDays"]) == "LogRetentionDays"
    assert set(re.findall(r"\$[A-Za-z.]+", log_format)) <= ACCESS_LOG_VARIABLES
    assert "$input" not in log_format and "body" not in log_format.lower()
    # One JSON object a line: every value is a quoted string, or messageString, which API Gateway quotes itself.
    filled = re.sub(r"\$context\.error\.messageString", '"x"', log_format).replace("$", "")
    assert "\n" not in log_format
    assert isinstance(json.loads(filled), dict)


def test_the_account_role_api_gateway_logs_through_is_set_before_the_api() -> None:
    """Access logging needs the region's API Gateway CloudWatch role; the role outlives the stack (others use it)."""
    resources = load_template()["Resources"]
    account = resources["ApiGatewayAccount"]
    role = resources["ApiGatewayCloudWatchRole"]

    assert resources["ConciergeApi"]["DependsOn"] == "ApiGatewayAccount"
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    assert role["DeletionPolicy"] == "Retain"
    principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert principal == {"Service": "apigateway.amazonaws.com"}


def test_closed_sessions_index_is_sparse_and_projects_what_the_retention_job_reads() -> None:
    table = resource_properties("ConciergeTable")
    (index,) = [index for index in table["GlobalSecondaryIndexes"] if index["IndexName"] == "closed_sessions"]
    definitions = {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]}

    assert [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] == [
        ("closed_pk", "HASH"),
        ("closed_sk", "RANGE"),
    ]
    assert definitions["closed_pk"] == definitions["closed_sk"] == "S"
    assert set(index["Projection"]["NonKeyAttributes"]) == {"user_id", "session_id", "checkin_id", "start"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_the_retention_job_runs_on_a_schedule_with_the_retention_parameter() -> None:
    spec = functions()["ExpireClosedStaysFunction"]
    parameter = load_template()["Parameters"]["MessageRetentionDays"]

    assert [event["Type"] for event in spec.events.values()] == ["ScheduleV2"]
    assert _ref(spec.environment["MESSAGE_RETENTION_DAYS"]) == "MessageRetentionDays"
    assert parameter["Default"] == 365 and parameter["MinValue"] >= 1


def _statements(logical_id: str) -> list[dict[str, Any]]:
    return [statement for policy in resource_properties(logical_id)["Policies"] for statement in policy["Statement"]]


def test_erasure_and_retention_roles_reach_only_guests_items_and_never_scan() -> None:
    """Least privilege: the erase route and the job touch guests' partitions (and lookups, session references) only."""
    for logical_id, prefixes in {
        "EraseGuestFunction": ["USER#*", "PHONE#*", "SESSION#*"],
        "ExpireClosedStaysFunction": ["USER#*", "SESSION#*"],
    }.items():
        for statement in _statements(logical_id):
            assert "dynamodb:Scan" not in statement["Action"]
            if statement["Resource"] == {"Fn::GetAtt": ["ConciergeTable", "Arn"]}:
                condition = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
                assert condition == prefixes, logical_id
    (erase_route,) = functions()["EraseGuestFunction"].events.values()
    assert erase_route["Properties"]["Method"] == "delete"
    assert erase_route["Properties"]["Auth"]["ApiKeyRequired"] is True
