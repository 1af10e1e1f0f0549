"""`python -m devstack.redrive` (make redrive): moves every dead-lettered WhatsApp message back to the outbound queue;
with `--queue answers`, every dead-lettered answer job back to the answer queue.

A message lands in the dead-letter queue after its last failed send (the row is then FAILED). Once WAHA works
again, moving the records back makes the sender try each one again from a fresh receive count.

SQS has a native way to do this, StartMessageMoveTask (the console's "Start DLQ redrive"), but moto does not
implement it, so this receives from the dead-letter queue, sends the bodies to the outbound queue and deletes a
record only after its send succeeded; the same code then serves the local stack and a deployed one. A crash
between send and delete can leave a record in both queues: harmless, because the sender claims a message before
it sends it and skips one already SENT, so two records of one message send it once.

Where the queues are:
  local stack (default): AWS_ENDPOINT_URL, else http://127.0.0.1:{MOTO_PORT or 5000}, and the queues devstack
      creates, `{RESOURCE_PREFIX or concierge}-OutboundQueue` and `...-OutboundDeadLetterQueue`;
  --stack-name NAME: the deployed stack's outputs OutboundQueueUrl and OutboundDeadLetterQueueUrl (with
      `--queue answers`, AnswerQueueUrl and AnswerDeadLetterQueueUrl) (ordinary AWS
      credentials and region);
  --queue-url / --dlq-url: given directly (either one overrides what the options above found).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from devstack.__main__ import load_env_file

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Queues:
    """A queue and its dead-letter queue: their logical ids in template.yaml and the stack's outputs naming them."""

    logical_id: str
    dead_letter_logical_id: str
    output: str
    dead_letter_output: str
    what: str


# --queue: WhatsApp messages that failed every send (the default), or guests' messages the answering function
# failed on every receive (their answers, request replies or hand-over to staff were never decided).
QUEUES = {
    "outbound": Queues(
        "OutboundQueue", "OutboundDeadLetterQueue", "OutboundQueueUrl", "OutboundDeadLetterQueueUrl", "message"
    ),
    "answers": Queues(
        "AnswerQueue", "AnswerDeadLetterQueue", "AnswerQueueUrl", "AnswerDeadLetterQueueUrl", "answer job"
    ),
}
DEFAULT_MOTO_PORT = 5000
DEFAULT_PREFIX = "concierge"
DEFAULT_REGION = "us-east-1"
# Long enough to send and delete a batch; a record whose send failed stays hidden this long, so one run
# does not receive it again and loop on it.
_RECEIVE_VISIBILITY_SECONDS = 60
# A short poll may answer empty while messages exist (it samples SQS's servers); a long poll asks all of them.
_RECEIVE_WAIT_SECONDS = 1
_SQS_BATCH_LIMIT = 10


class RedriveError(RuntimeError):
    """The queues could not be found or reached; the message says what to check."""


def redrive(sqs_client: Any, dlq_url: str, queue_url: str) -> int:
    """Moves every record of dlq_url to queue_url; returns how many were moved.

    A record is deleted from the dead-letter queue only once SendMessageBatch reported it sent; a record that
    could not be sent is logged and stays there (hidden for a minute, then visible to the next run)."""
    moved = 0
    unsent: set[str] = set()
    while True:
        messages = sqs_client.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=_SQS_BATCH_LIMIT,
            WaitTimeSeconds=_RECEIVE_WAIT_SECONDS,
            VisibilityTimeout=_RECEIVE_VISIBILITY_SECONDS,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        # Only records that already failed to send this run: sending them again now would just fail again.
        if not messages or all(message["MessageId"] in unsent for message in messages):
            break
        entries = []
        for index, message in enumerate(messages):
            entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        response = sqs_client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        for failure in response.get("Failed", []):
            message = messages[int(failure["Id"])]
            unsent.add(message["MessageId"])
            LOG.warning(
                "could not move %s back (%s: %s); it stays in the dead-letter queue",
                message["MessageId"],
                failure.get("Code"),
                failure.get("Message"),
            )
        sent = [messages[int(success["Id"])] for success in response.get("Successful", [])]
        if not sent:
            continue
        deleted = sqs_client.delete_message_batch(
            QueueUrl=dlq_url,
            Entries=[{"Id": str(index), "ReceiptHandle": each["ReceiptHandle"]} for index, each in enumerate(sent)],
        )
        for failure in deleted.get("Failed", []):
            # Already in the outbound queue, so it counts as moved; the copy left behind is harmless (see above).
            left_behind = sent[int(failure["Id"])]["MessageId"]
            LOG.warning("moved %s but could not delete it from the dead-letter queue", left_behind)
        moved += len(sent)
    return moved


def queue_depth(sqs_client: Any, queue_url: str) -> int:
    attributes = sqs_client.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


@dataclass(frozen=True)
class Target:
    """The two queues and the client that reaches them, with a word on where they came from."""

    sqs: Any
    dlq_url: str
    queue_url: str
    where: str


def _queue_url(sqs_client: Any, name: str) -> str:
    return sqs_client.get_queue_url(QueueName=name)["QueueUrl"]


def _local_target(arguments: argparse.Namespace) -> Target:
    load_env_file()
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "").strip()
    if not endpoint:
        port = os.environ.get("MOTO_PORT", "").strip() or str(DEFAULT_MOTO_PORT)
        endpoint = f"http://127.0.0.1:{port}"
    prefix = os.environ.get("RESOURCE_PREFIX", "").strip() or DEFAULT_PREFIX
    region = os.environ.get("AWS_DEFAULT_REGION", "").strip() or DEFAULT_REGION
    # Fake credentials on purpose: real ones have no business going to a local endpoint.
    sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )
    queues = QUEUES[arguments.queue]
    try:
        dlq_url = arguments.dlq_url or _queue_url(sqs, f"{prefix}-{queues.dead_letter_logical_id}")
        queue_url = arguments.queue_url or _queue_url(sqs, f"{prefix}-{queues.logical_id}")
    except BotoCoreError as error:
        raise RedriveError(
            f"cannot reach the local AWS endpoint {endpoint} ({error}); start the stack with `make run` "
            "in another terminal, or pass --stack-name for a deployed one"
        ) from error
    except ClientError as error:
        raise RedriveError(
            f"the queues {prefix}-{queues.logical_id} / {prefix}-{queues.dead_letter_logical_id} are not at {endpoint} "
            f"({error.response['Error'].get('Code')}); is RESOURCE_PREFIX the one the stack uses?"
        ) from error
    return Target(sqs, dlq_url, queue_url, f"local stack at {endpoint}")


def _stack_outputs(stack_name: str, region: str | None) -> dict[str, str]:
    cloudformation = boto3.client("cloudformation", region_name=region)
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (BotoCoreError, ClientError) as error:
        raise RedriveError(f"cannot read the CloudFormation stack {stack_name}: {error}") from error
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def _deployed_target(arguments: argparse.Namespace) -> Target:
    queues = QUEUES[arguments.queue]
    outputs = _stack_outputs(arguments.stack_name, arguments.region) if arguments.stack_name else {}
    dlq_url = arguments.dlq_url or outputs.get(queues.dead_letter_output)
    queue_url = arguments.queue_url or outputs.get(queues.output)
    if not dlq_url or not queue_url:
        named = ((queues.dead_letter_output, dlq_url), (queues.output, queue_url))
        missing = [name for name, url in named if not url]
        raise RedriveError(f"stack {arguments.stack_name} has no output {' or '.join(missing)}")
    sqs = boto3.client("sqs", region_name=arguments.region)
    where = f"stack {arguments.stack_name}" if arguments.stack_name else "the given queues"
    return Target(sqs, dlq_url, queue_url, where)


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.redrive",
        description="Move every dead-lettered WhatsApp message (or answer job) back to its queue.",
    )
    parser.add_argument(
        "--queue",
        choices=sorted(QUEUES),
        default="outbound",
        help="outbound: WhatsApp messages (default); answers: guests' messages the answering function failed on",
    )
    parser.add_argument("--stack-name", help="a deployed stack: read the queue URLs from its outputs")
    parser.add_argument("--region", help="AWS region of the deployed stack (default: your AWS configuration)")
    parser.add_argument("--dlq-url", help="the dead-letter queue's URL")
    parser.add_argument(
        "--queue-url", help="the queue's URL (the outbound queue's, or with --queue answers the answer queue's)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    arguments = _parse_arguments(argv)
    # Both URLs given: no need to guess whether they are local; boto3 follows the environment as usual.
    deployed = arguments.stack_name or (arguments.dlq_url and arguments.queue_url)
    try:
        target = _deployed_target(arguments) if deployed else _local_target(arguments)
        moved = redrive(target.sqs, target.dlq_url, target.queue_url)
        left = queue_depth(target.sqs, target.dlq_url)
    except RedriveError as error:
        print(f"redrive: {error}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"redrive: {error}", file=sys.stderr)
        return 1
    what = QUEUES[arguments.queue].what
    print(f"Moved {moved} {what}(s) from the dead-letter queue back to the {arguments.queue} queue ({target.where}).")
    print(f"  from: {target.dlq_url}\n  to:   {target.queue_url}")
    if left:
        # SQS's counts lag by up to a minute, so this is a hint to look again, not a failure of the run.
        print(f"About {left} message(s) are still in the dead-letter queue; see any warnings above.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
