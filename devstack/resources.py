"""Creates the template's DynamoDB table and SQS queues through boto3 (moto's server or mock_aws)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from devstack.template import load_template, resources_of_type

# Properties that CloudFormation accepts but CreateTable takes under another shape or not at all.
_TABLE_PROPERTIES_SET_AFTER_CREATE = {"TimeToLiveSpecification", "PointInTimeRecoverySpecification"}


@dataclass(frozen=True)
class LocalResources:
    table_name: str
    queue_urls: dict[str, str]
    queue_arns: dict[str, str]

    @property
    def outbound_queue_url(self) -> str:
        return self.queue_urls["OutboundQueue"]

    @property
    def dead_letter_queue_url(self) -> str:
        return self.queue_urls["OutboundDeadLetterQueue"]


def _table_request(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    request = {key: value for key, value in properties.items() if key not in _TABLE_PROPERTIES_SET_AFTER_CREATE}
    request["TableName"] = name
    sse = request.pop("SSESpecification", None)
    if sse:
        request["SSESpecification"] = {"Enabled": sse["SSEEnabled"]}
    return request


def _queue_attributes(properties: dict[str, Any], queue_arns: dict[str, str]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for key, value in properties.items():
        if key == "RedrivePolicy":
            target = value["deadLetterTargetArn"]["Fn::GetAtt"][0]
            value = {"deadLetterTargetArn": queue_arns[target], "maxReceiveCount": value["maxReceiveCount"]}
            attributes[key] = json.dumps(value)
        elif key in {"VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"}:
            attributes[key] = str(value)
        elif key == "SqsManagedSseEnabled":
            attributes[key] = str(value).lower()
    return attributes


def _depends_on_queue(properties: dict[str, Any]) -> bool:
    return "RedrivePolicy" in properties


def create_resources(prefix: str = "concierge", session: boto3.Session | None = None) -> LocalResources:
    """Creates (or finds) the table and queues of template.yaml, named `{prefix}-{LogicalId}`."""
    session = session or boto3.Session()
    dynamodb = session.client("dynamodb")
    sqs = session.client("sqs")
    template = load_template()

    table_names = []
    for logical_id, resource in resources_of_type("AWS::DynamoDB::Table", template).items():
        name = f"{prefix}-{logical_id}"
        properties = resource["Properties"]
        try:
            dynamodb.create_table(**_table_request(name, properties))
            dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
            ttl = properties.get("TimeToLiveSpecification")
            if ttl:
                dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        except dynamodb.exceptions.ResourceInUseException:
            pass
        table_names.append(name)

    queues = resources_of_type("AWS::SQS::Queue", template)
    queue_urls: dict[str, str] = {}
    queue_arns: dict[str, str] = {}
    # Dead-letter queues first: a redrive policy names its target's ARN.
    for logical_id, resource in sorted(queues.items(), key=lambda item: _depends_on_queue(item[1]["Properties"])):
        name = f"{prefix}-{logical_id}"
        attributes = _queue_attributes(resource["Properties"], queue_arns)
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        queue_urls[logical_id] = url
        queue_arns[logical_id] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    (table_name,) = table_names
    return LocalResources(table_name=table_name, queue_urls=queue_urls, queue_arns=queue_arns)
