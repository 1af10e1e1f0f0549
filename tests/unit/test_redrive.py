"""`make redrive`: dead-lettered records go back to the outbound queue, and leave the dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.redrive import queue_depth, redrive


def _queue_pair(sqs: Any) -> tuple[str, str]:
    dlq_url = sqs.create_queue(QueueName="redrive-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})
    queue_url = sqs.create_queue(QueueName="redrive-main", Attributes={"RedrivePolicy": policy})["QueueUrl"]
    return dlq_url, queue_url


def _drain(sqs: Any, url: str) -> list[str]:
    bodies: list[str] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [message["Body"] for message in messages]
    return sorted(bodies)


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def test_every_dead_lettered_record_moves_back_to_the_main_queue(sqs: Any) -> None:
    """All records of the dead-letter queue (more than one batch) arrive in the main queue; the DLQ is empty."""
    # GIVEN a dead-letter queue holding 23 message keys, more than SQS's batch of 10
    dlq_url, queue_url = _queue_pair(sqs)
    bodies = [json.dumps({"pk": f"USER#{index}", "sk": f"MSG#{index:02d}"}) for index in range(23)]
    for body in bodies:
        sqs.send_message(QueueUrl=dlq_url, MessageBody=body)

    # WHEN they are redriven
    moved = redrive(sqs, dlq_url, queue_url)

    # THEN each one is in the main queue exactly once and none is left behind
    assert moved == 23
    assert _drain(sqs, queue_url) == sorted(bodies)
    assert _drain(sqs, dlq_url) == []


def test_empty_dead_letter_queue_moves_nothing(sqs: Any) -> None:
    """With nothing dead-lettered the redrive is a no-op that reports zero."""
    # GIVEN an empty dead-letter queue
    dlq_url, queue_url = _queue_pair(sqs)

    # WHEN it is redriven
    moved = redrive(sqs, dlq_url, queue_url)

    # THEN nothing moved
    assert moved == 0
    assert _drain(sqs, queue_url) == []


def test_record_whose_send_fails_stays_in_the_dead_letter_queue(sqs: Any) -> None:
    """A record is deleted from the DLQ only after its send succeeded: a failed send leaves it there."""
    # GIVEN a dead-letter queue with one record, and a main queue that refuses every send
    dlq_url, queue_url = _queue_pair(sqs)
    sqs.send_message(QueueUrl=dlq_url, MessageBody='{"pk":"USER#1","sk":"MSG#1"}')

    class RefusingSqs:
        """The real client, except that every SendMessageBatch entry fails."""

        def __getattr__(self, name: str) -> Any:
            return getattr(sqs, name)

        def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            failed = [{"Id": entry["Id"], "SenderFault": False, "Code": "InternalError"} for entry in Entries]
            return {"Successful": [], "Failed": failed}

    # WHEN it is redriven
    moved = redrive(RefusingSqs(), dlq_url, queue_url)

    # THEN nothing moved and the record is still in the dead-letter queue (hidden until its visibility lapses)
    assert moved == 0
    assert _drain(sqs, queue_url) == []
    assert queue_depth(sqs, dlq_url) == 1


def test_answer_jobs_are_redriven_to_the_answer_queue_of_a_deployed_stack(
    sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--queue answers` finds the answer queues through the stack's outputs and moves the jobs back there."""
    from devstack.redrive import main

    template = {
        "Resources": {"AnswerQueue": {"Type": "AWS::SQS::Queue"}, "AnswerDeadLetterQueue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "AnswerQueueUrl": {"Value": {"Ref": "AnswerQueue"}},
            "AnswerDeadLetterQueueUrl": {"Value": {"Ref": "AnswerDeadLetterQueue"}},
        },
    }
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    cloudformation.create_stack(StackName="concierge", TemplateBody=json.dumps(template))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cloudformation.describe_stacks()["Stacks"][0]["Outputs"]}
    sqs.send_message(QueueUrl=outputs["AnswerDeadLetterQueueUrl"], MessageBody='{"pk":"USER#1","sk":"MSG#1"}')

    status = main(["--queue", "answers", "--stack-name", "concierge", "--region", "us-east-1"])

    assert status == 0
    assert _drain(sqs, outputs["AnswerQueueUrl"]) == ['{"pk":"USER#1","sk":"MSG#1"}']
    assert "Moved 1 answer job(s)" in capsys.readouterr().out
