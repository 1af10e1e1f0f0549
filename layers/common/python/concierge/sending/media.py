"""Guests' photos and files: copied from WAHA into the media bucket at once, shown through short-lived links.

WAHA keeps a file it downloaded for WHATSAPP_FILES_LIFETIME (180 s by default) behind its X-Api-Key, so the
copy cannot wait for anyone to ask. It is not done on the webhook's path either (that stays at three AWS
calls): the webhook's one SendMessage puts a copy job on the media queue instead of the reply's key on the
outbound queue. A job names the message row (its `media.state` is `pending`) and, when the bot answers,
the reply's row. The worker (FetchMediaFunction, `Batch`):

1. hands the reply's key to the outbound queue first, on every receive of the job, before anything that
   may fail or wait (a reply stored `queued` sits in this job until then; a twin in the outbound queue is
   harmless: the sender's claim sends a message once). If SQS refuses, the reply's row gets the outbox
   index's UNQUEUED mark, so the sweeper sends it; if even that fails, the record fails and comes back.
   So a reply is never held by a job that ends in the media dead-letter queue, unless SQS and DynamoDB
   both refused every attempt, and then moving the job back (`make redrive` with the media queues) hands
   it over again;
2. reads WAHA's file (`waha.download_file`, at most MAX_BYTES), puts it in the bucket under
   `keys.media_object` (ids only), and sets `media` to `stored` with its size and key, on condition that
   it is still `pending`. WAHA answering 404 or 410 (the file expired), a file over MAX_BYTES: `error`
   with the reason, no retry. WAHA unreachable or answering another error: retried soon (2 s, 4 s, 8 s...,
   the file lives only minutes), and on the last receive `error`.

A job whose row is not there yet (the webhook queues before it commits) is looked at again after 2 s, 6 s...
while it is young; older, it belonged to a transaction that was cancelled (a redelivered webhook) and is
dropped. A copy whose row vanished meanwhile (the guest was erased) is deleted from the bucket again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from concierge import aws_clients, keys, store
from concierge.config import settings
from concierge.sending import outbox

if TYPE_CHECKING:
    from concierge.webhook.webhook_events import GuestMedia

logger = Logger(child=True)

PENDING = "pending"
STORED = "stored"
ERROR = "error"
# One copy is held in memory and must fit the function's time: 16 MB is WhatsApp's limit for videos, above any
# photo. A larger document is not kept (its message says so).
MAX_BYTES = 16 * 1024 * 1024
# How long a history link to our copy works.
LINK_SECONDS = 15 * 60
NOT_QUEUED_REASON = "the copy could not be started (the media queue refused the job)"
# A failed download is tried again soon: WAHA deletes the file a few minutes after it arrived.
RETRY_BASE_SECONDS = 2
# Callers queue the job before they commit the row (see `outbox`); past this age a missing row never comes.
UNCOMMITTED_WINDOW_SECONDS = 120
# Time to download the largest file and put it in the bucket: a record with less left goes back untouched.
NEEDED_MILLIS = 20_000


class CopyFailed(Exception):
    """This record must come back later (and, after the queue's last receive, go to the dead-letter queue)."""


def job_body(media_key: keys.Key, reply_key: keys.Key | None) -> str:
    """A copy job: keys only, like the outbound queue's records (no guest text or number in SQS)."""
    job: dict[str, Any] = {"media": {"pk": media_key["pk"], "sk": media_key["sk"]}}
    if reply_key is not None:
        job["reply"] = {"pk": reply_key["pk"], "sk": reply_key["sk"]}
    return json.dumps(job, separators=(",", ":"))


def parse_job(raw: str) -> tuple[keys.Key, keys.Key | None]:
    """The message's key and the reply's (None: no reply); ValueError for anything this system did not queue."""
    job = json.loads(raw)
    if not isinstance(job, dict):
        raise ValueError("queue record is not a media job")
    media_key = outbox.parse_body(json.dumps(job.get("media")))
    reply = job.get("reply")
    return media_key, outbox.parse_body(json.dumps(reply)) if reply is not None else None


def enqueue(media_key: keys.Key, reply_key: keys.Key | None) -> bool:
    """Queues one copy job; False when SQS refused it (the reply's row is then marked for the sweeper)."""
    try:
        aws_clients.sqs().send_message(QueueUrl=settings().media_queue_url, MessageBody=job_body(media_key, reply_key))
    except (BotoCoreError, ClientError):
        logger.exception("could not queue a media copy", extra={"message_sk": media_key["sk"]})
        return False
    return True


def described(media: GuestMedia, queued: bool) -> dict[str, Any]:
    """The message row's `media` as the webhook stores it: waiting for its copy, or why there is none."""
    stored: dict[str, Any] = {"mimetype": media.mimetype}
    if media.filename:
        stored["filename"] = media.filename
    if media.waha_file is None:
        return {**stored, "state": ERROR, "error": media.error or "no file"}
    if not queued:
        return {**stored, "state": ERROR, "error": NOT_QUEUED_REASON}
    return {**stored, "state": PENDING, "waha_file": media.waha_file}


def view(media: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of a message's file: a guest's with a link to our copy (or why there is none), a
    staff message's as it was sent."""
    state = media.get("state")
    shown: dict[str, Any] = {"mimetype": media.get("mimetype"), "filename": media.get("filename")}
    if state is None:
        # Sent by staff: their own URL, which WAHA fetched.
        return {**shown, "url": media.get("url")}
    if state == STORED:
        return {**shown, "size": int(media.get("size") or 0), "url": link(media["s3_key"])}
    if state == ERROR:
        return {**shown, "error": media.get("error")}
    return {**shown, "pending": True}


def link(s3_key: str) -> str:
    """A presigned GET of our copy, valid LINK_SECONDS. Signed locally: no AWS call."""
    return str(
        aws_clients.s3().generate_presigned_url(
            "get_object", Params={"Bucket": settings().media_bucket, "Key": s3_key}, ExpiresIn=LINK_SECONDS
        )
    )


def _sent_seconds_ago(record: dict[str, Any]) -> float:
    sent_millis = int(record.get("attributes", {}).get("SentTimestamp") or 0)
    return datetime.now(UTC).timestamp() - sent_millis / 1000


def _receive_count(record: dict[str, Any]) -> int:
    return int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))


class Batch:
    """One SQS batch of copy jobs: their message rows read once, then each job done in turn."""

    def __init__(self, records: list[dict[str, Any]], remaining_millis: Callable[[], int]) -> None:
        self._remaining_millis = remaining_millis
        wanted = []
        for record in records:
            try:
                wanted.append(parse_job(record["body"])[0])
            except ValueError:
                continue  # reported when its record is processed
        self._rows = store.get_many(wanted) if wanted else {}

    def copy(self, record: dict[str, Any]) -> str:
        """Does one job; returns what happened, raises CopyFailed to have the record come back."""
        try:
            media_key, reply_key = parse_job(record["body"])
        except ValueError as error:
            raise CopyFailed("queue record is not a media job") from error
        last_receive = _receive_count(record) >= settings().media_max_receive_count
        row = self._rows.get(store.identity(media_key))
        if reply_key is not None and not self._hand_over(reply_key):
            if row is None:
                # The reply's row is not there to mark: not committed yet, or never will be (same transaction).
                return self._missing(media_key, record, last_receive)
            raise CopyFailed("the reply could be neither queued nor marked for the sweeper")
        if row is None:
            return self._missing(media_key, record, last_receive)
        media = row.get("media") or {}
        if media.get("state") != PENDING:
            return "done_before"
        if self._remaining_millis() < NEEDED_MILLIS:
            # Back at once, to another invocation: the queue's own timeout would outlast WAHA's file.
            _delay_retry(record, 0)
            raise CopyFailed("not enough time left in this invocation")
        return self._copy(media_key, row, media, record, last_receive)

    @staticmethod
    def _hand_over(reply_key: keys.Key) -> bool:
        """The reply's key to the outbound queue, or its row marked for the sweeper; False when neither worked."""
        if outbox.enqueue(reply_key):
            return True
        created_at = reply_key["sk"].removeprefix(keys.MESSAGE_PREFIX).split("#", 1)[0]
        try:
            return store.update_item(
                reply_key,
                "SET outbox_pk = :unqueued, outbox_sk = :created",
                {":unqueued": keys.UNQUEUED_OUTBOX, ":created": created_at},
            )
        except (BotoCoreError, ClientError):
            logger.exception("could not mark a reply for the sweeper")
            return False

    def _missing(self, media_key: keys.Key, record: dict[str, Any], last_receive: bool) -> str:
        receive_count = _receive_count(record)
        if _sent_seconds_ago(record) < UNCOMMITTED_WINDOW_SECONDS and not last_receive:
            # The webhook may still be committing the rows.
            _delay_retry(record, RETRY_BASE_SECONDS * 3 ** max(receive_count - 1, 0))
            raise CopyFailed("message row not written yet")
        logger.info("media job's message is not in the table; dropped", extra={"message_sk": media_key["sk"]})
        return "missing"

    def _copy(
        self, media_key: keys.Key, row: dict[str, Any], media: dict[str, Any], record: dict[str, Any], last: bool
    ) -> str:
        # Imported here: urllib3's pool is built only by the functions that talk to WAHA.
        from concierge.sending import waha

        described = {name: media[name] for name in ("mimetype", "filename") if media.get(name)}
        try:
            content, _ = waha.client().download_file(media.get("waha_file") or "", MAX_BYTES)
        except waha.WahaFileGone as gone:
            reason = f"WAHA no longer had the file ({gone.reason}); it keeps files WHATSAPP_FILES_LIFETIME seconds"
            return self._settle(media_key, {**described, "state": ERROR, "error": reason}, "expired")
        except waha.WahaFileTooLarge:
            reason = f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB and was not kept"
            return self._settle(media_key, {**described, "state": ERROR, "error": reason}, "too_large")
        except waha.WahaError as error:
            logger.warning("could not fetch a guest's file from WAHA", extra={"reason": error.reason, "final": last})
            if last:
                return self._settle(media_key, {**described, "state": ERROR, "error": error.reason}, "failed")
            _delay_retry(record, RETRY_BASE_SECONDS * 2 ** (_receive_count(record) - 1))
            raise CopyFailed(error.reason) from error
        s3_key = keys.media_object(row["user_id"], row["message_id"])
        # Its type is WhatsApp's; its name (guest text) stays in the table, never in the object's metadata.
        aws_clients.s3().put_object(
            Bucket=settings().media_bucket,
            Key=s3_key,
            Body=content,
            ContentType=media.get("mimetype") or "application/octet-stream",
        )
        outcome = self._settle(
            media_key, {**described, "state": STORED, "size": len(content), "s3_key": s3_key}, "stored"
        )
        if outcome == "gone":
            # The guest was erased while we copied: the file must not outlive them.
            aws_clients.s3().delete_object(Bucket=settings().media_bucket, Key=s3_key)
        return outcome

    @staticmethod
    def _settle(media_key: keys.Key, media: dict[str, Any], outcome: str) -> str:
        """Writes the copy's outcome while the row still waits for it; "gone" when the row was erased meanwhile."""
        try:
            store.update_returning_old(
                media_key,
                "SET media = :media",
                {":media": media, ":pending": PENDING},
                condition="media.#state = :pending",
                names={"#state": "state"},
            )
        except store.ConditionFailed as failed:
            return "gone" if failed.old_item is None else "done_before"
        logger.info("guest's file settled", extra={"outcome": outcome, "message_sk": media_key["sk"]})
        return outcome


def _delay_retry(record: dict[str, Any], delay_seconds: int) -> None:
    outbox.retry_after(record, settings().media_queue_url, delay_seconds)
