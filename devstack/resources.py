"""Creates the template's DynamoDB table, SQS queues and S3 buckets through boto3 (moto's server or mock_aws)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
    # S3 buckets by logical id.
    bucket_names: dict[str, str] = field(default_factory=dict)

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


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    # CloudFormation's shape of a rule, in the API's (PutBucketLifecycleConfiguration).
    request: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "ExpirationInDays" in rule:
        request["Expiration"] = {"Days": int(_parameter_value(rule["ExpirationInDays"]))}
    if "AbortIncompleteMultipartUpload" in rule:
        days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        request["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(days)}
    return request


def _parameter_value(node: Any) -> Any:
    """A literal, or the default of the parameter a !Ref names (the local stack deploys the defaults)."""
    if isinstance(node, dict) and "Ref" in node:
        return load_template()["Parameters"][node["Ref"]]["Default"]
    return node


def _create_bucket(s3: Any, name: str, properties: dict[str, Any]) -> None:
    """The bucket with its encryption, public access block, ownership and lifecycle, as the template sets them.
    (Its policy, TLS only, is left out: the local endpoint is plain HTTP.)"""
    try:
        s3.create_bucket(Bucket=name)
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        return
    if "BucketEncryption" in properties:
        rules = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]} for rule in rules
                ]
            },
        )
    if "PublicAccessBlockConfiguration" in properties:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
        )
    if "OwnershipControls" in properties:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=properties["OwnershipControls"])
    if "LifecycleConfiguration" in properties:
        rules = [_lifecycle_rule(rule) for rule in properties["LifecycleConfiguration"]["Rules"]]
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})


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

    s3 = session.client("s3")
    bucket_names: dict[str, str] = {}
    for logical_id, resource in resources_of_type("AWS::S3::Bucket", template).items():
        # Bucket names are lower case.
        name = f"{prefix}-{logical_id}".lower()
        _create_bucket(s3, name, resource.get("Properties", {}))
        bucket_names[logical_id] = name

    (table_name,) = table_names
    return LocalResources(
        table_name=table_name, queue_urls=queue_urls, queue_arns=queue_arns, bucket_names=bucket_names
    )
