"""Photos and files: a guest's copied from WAHA into the media bucket and linked in the history; staff's sent
through WAHA's sendImage and sendFile."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
import requests

from concierge import aws_clients
from concierge.sending.media import MAX_BYTES
from concierge.templates import auto_reply
from devstack.sender import sqs_record
from devstack.waha_sim import InboundMedia
from tests.conftest import forget_cached_clients, lambda_context
from tests.driver import GUEST_CHAT_ID, Concierge, waha_message

PHOTO = b"\xff\xd8\xff\xe0 a guest's photo of the broken tap \xff\xd9"


def _guest(concierge: Concierge) -> dict[str, Any]:
    _, guest = concierge.register()
    concierge.deliver_queued()
    return guest


def _last(concierge: Concierge, guest: dict[str, Any]) -> dict[str, Any]:
    return concierge.conversation(guest["user_id"])[-1]


def _guest_message(concierge: Concierge, guest: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in concierge.conversation(guest["user_id"]) if m["role"] == "User")


def _row(concierge: Concierge, message_id: str) -> dict[str, Any]:
    return next(item for item in concierge.items_of_type("Message") if item["message_id"] == message_id)


def _auto_replies_sent(concierge: Concierge) -> int:
    return sum(1 for sent in concierge.waha.sent_messages() if sent["text"] == auto_reply("id"))


# --- a guest's photo ---------------------------------------------------------------------------------


def test_a_guests_photo_is_copied_to_the_bucket_and_linked_in_the_history(concierge: Concierge) -> None:
    """The webhook stores the caption and the file's description (pending); the copy job puts WAHA's file in the
    bucket under ids only, and the history links to it with a presigned URL that serves the very bytes."""
    guest = _guest(concierge)
    delivery = concierge.media_message(
        "The tap in my bathroom", InboundMedia(mimetype="image/jpeg", filename="tap.jpg", content=PHOTO)
    )

    status, answer = concierge.webhook(delivery)
    before = _guest_message(concierge, guest)
    handled = concierge.copy_media()
    after = _guest_message(concierge, guest)
    row = _row(concierge, after["id"])

    assert (status, answer["outcome"], handled) == (200, "stored", 1)
    assert before["text"] == "The tap in my bathroom"
    assert before["media"] == {"mimetype": "image/jpeg", "filename": "tap.jpg", "pending": True}
    assert {key: after["media"][key] for key in ("mimetype", "filename", "size")} == {
        "mimetype": "image/jpeg",
        "filename": "tap.jpg",
        "size": len(PHOTO),
    }
    assert row["media"]["s3_key"] == f"media/{guest['user_id']}/{after['id']}"
    assert concierge.media_object(row["media"]["s3_key"]) == PHOTO
    fetched = requests.get(after["media"]["url"], timeout=5)
    assert (fetched.status_code, fetched.content) == (200, PHOTO)
    assert "X-Amz-Expires=900" in after["media"]["url"]


def test_the_reply_to_a_photo_waits_in_its_copy_job_and_is_sent_once_handed_on(concierge: Concierge) -> None:
    """The webhook's one SendMessage is the copy job: the auto-reply reaches the outbound queue through it."""
    _guest(concierge)

    concierge.webhook(concierge.media_message())
    outbound_before = concierge.queue_depth()
    media_jobs = concierge.queue_depth("MediaQueue")
    concierge.copy_media()
    concierge.deliver_queued()

    assert (outbound_before, media_jobs) == (0, 1)
    assert _auto_replies_sent(concierge) == 1
    assert concierge.queue_depth("MediaQueue") == 0


def test_a_file_waha_no_longer_has_is_stored_as_an_error_without_retry_and_the_reply_still_goes(
    concierge: Concierge,
) -> None:
    """WAHA deleted the file (WHATSAPP_FILES_LIFETIME passed): 404, the reason stored, the job done, no retry."""
    guest = _guest(concierge)
    concierge.webhook(concierge.media_message("Here"))
    concierge.waha.expire_files()

    concierge.copy_media()
    concierge.deliver_queued()
    message = _guest_message(concierge, guest)

    assert message["media"]["mimetype"] == "image/jpeg"
    assert "no longer had the file" in message["media"]["error"] and "url" not in message["media"]
    assert concierge.queue_depth("MediaQueue") == 0
    assert _auto_replies_sent(concierge) == 1


@pytest.mark.parametrize(
    ("media", "reason"),
    [
        (InboundMedia(mimetype="application/pdf", filename="bill.pdf", content=None), "media.url is null"),
        (
            InboundMedia(mimetype="image/jpeg", content=None, error="Failed to download media"),
            "WAHA could not download",
        ),
    ],
)
def test_a_message_without_a_file_to_copy_is_stored_with_the_reason_and_no_job(
    concierge: Concierge, media: InboundMedia, reason: str
) -> None:
    """media.url null, or WAHA's own download failed: the message is kept with why, nothing is queued for a copy,
    and the reply goes to the outbound queue directly."""
    guest = _guest(concierge)

    status, answer = concierge.webhook(concierge.media_message("", media))
    stored = _guest_message(concierge, guest)

    assert (status, answer["outcome"]) == (200, "stored")
    assert reason in stored["media"]["error"] and stored["media"]["mimetype"] == media.mimetype
    assert concierge.queue_depth("MediaQueue") == 0 and concierge.queue_depth() == 1


def test_a_file_larger_than_the_bound_is_not_kept(concierge: Concierge) -> None:
    """Files over 16 MB are described with the reason, not copied."""
    guest = _guest(concierge)
    concierge.webhook(concierge.media_message("", InboundMedia(mimetype="video/mp4", content=b"v" * (MAX_BYTES + 1))))

    concierge.copy_media()

    assert "larger than 16 MB" in _guest_message(concierge, guest)["media"]["error"]
    assert concierge.queue_depth("MediaQueue") == 0


def test_waha_unreachable_is_retried_soon_and_the_copy_succeeds_once_it_answers(concierge: Concierge) -> None:
    """A fetch that fails because WAHA is down comes back after 2 s (the file lives only minutes)."""
    guest = _guest(concierge)
    concierge.webhook(concierge.media_message("", InboundMedia(content=PHOTO)))
    concierge.waha.set_fault("down")

    concierge.copy_media()
    pending = _guest_message(concierge, guest)["media"]
    concierge.waha.set_fault("ok")
    deadline = time.monotonic() + 10
    while concierge.copy_media() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)

    assert pending.get("pending") is True
    assert _guest_message(concierge, guest)["media"]["size"] == len(PHOTO)


def test_a_reply_the_outbound_queue_refuses_is_marked_for_the_sweeper(
    concierge: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If SQS refuses the reply's key when the job hands it on, the reply's row carries the UNQUEUED mark."""
    guest = _guest(concierge)
    concierge.webhook(concierge.media_message())
    monkeypatch.setenv("OUTBOUND_QUEUE_URL", concierge.resources.outbound_queue_url + "-missing")
    forget_cached_clients()

    concierge.copy_media()
    reply = _last(concierge, guest)

    assert reply["role"] == "System" and reply["status"] == "PENDING"
    assert _row(concierge, reply["id"]).get("outbox_pk") == "UNQUEUED"
    assert _guest_message(concierge, guest)["media"]["size"] > 0


def test_a_media_message_counts_toward_the_cooldown_and_its_caption_is_no_command(concierge: Concierge) -> None:
    """A photo (even captioned STOP) gets the auto-reply like a text, and a text right after it gets none."""
    guest = _guest(concierge)

    concierge.webhook(concierge.media_message("STOP"))
    concierge.webhook(concierge.media_message(""))
    concierge.webhook(waha_message(text="Hello?"))

    kinds = [m.get("role") for m in concierge.conversation(guest["user_id"])]
    assert kinds == ["System", "User", "System", "User", "User"]
    lookup = next(item for item in concierge.items() if item["pk"].startswith("PHONE#"))
    assert not lookup.get("opted_out")


def test_a_history_page_without_files_creates_no_s3_client(concierge: Concierge) -> None:
    """The S3 client (and its presigning) is created only for a page that holds a stored file."""
    guest = _guest(concierge)
    concierge.webhook(waha_message(text="Just text"))
    forget_cached_clients()

    concierge.conversation(guest["user_id"])
    without = aws_clients.s3.cache_info().currsize
    concierge.webhook(concierge.media_message())
    concierge.copy_media()
    concierge.conversation(guest["user_id"])

    assert (without, aws_clients.s3.cache_info().currsize) == (0, 1)


# --- staff sending a photo or a file ------------------------------------------------------------------


def test_staff_send_a_photo_through_send_image(concierge: Concierge) -> None:
    guest = _guest(concierge)
    media = {"url": "https://hotel.example/menu.jpg", "mimetype": "image/jpeg", "filename": "menu.jpg"}

    status, message = concierge.staff_message(guest["session_id"], {"text": "Today's menu", "media": media})
    concierge.deliver_queued()
    sent = concierge.waha.sent_messages()[-1]

    assert status == 202 and message["media"] == media and message["text"] == "Today's menu"
    assert sent["body"] == {
        "chatId": GUEST_CHAT_ID,
        "file": {"url": media["url"], "mimetype": "image/jpeg", "filename": "menu.jpg"},
        "session": "default",
        "caption": "Today's menu",
    }
    assert sent["file"]["url"] == media["url"]
    assert _last(concierge, guest)["status"] == "SENT"


def test_staff_send_a_pdf_without_caption_through_send_file(concierge: Concierge) -> None:
    guest = _guest(concierge)
    media = {"url": "http://hotel.example/invoice.pdf", "mimetype": "application/pdf", "filename": "invoice.pdf"}

    status, message = concierge.staff_message(guest["session_id"], {"media": media})
    concierge.deliver_queued()
    sent = concierge.waha.sent_messages()[-1]

    assert status == 202 and message["text"] == ""
    assert sent["body"]["file"] == media and "caption" not in sent["body"]
    assert sent["chatId"] == GUEST_CHAT_ID
    assert _last(concierge, guest)["status"] == "SENT"


def test_a_photo_whose_send_went_unanswered_is_found_in_waha_and_not_sent_again(concierge: Concierge) -> None:
    """sendImage takes no pre-generated id: after a 500 that hid a send, the look-up finds it by its caption."""
    guest = _guest(concierge)
    media = {"url": "https://hotel.example/map.png", "mimetype": "image/png"}
    concierge.staff_message(guest["session_id"], {"text": "The way to the pool", "media": media})
    concierge.waha.set_fault("sent500")

    concierge.deliver_queued()
    concierge.waha.set_fault("ok")
    concierge.deliver_queued()

    photos = [sent for sent in concierge.waha.sent_messages() if "file" in sent]
    assert len(photos) == 1 and _last(concierge, guest)["status"] == "SENT"


@pytest.mark.parametrize(
    "body",
    [
        {"media": {"url": "ftp://hotel.example/a.jpg", "mimetype": "image/jpeg"}},
        {"media": {"url": "/menu.jpg", "mimetype": "image/jpeg"}},
        {"media": {"url": "https://hotel.example/a b.jpg", "mimetype": "image/jpeg"}},
        {"media": {"url": "https://hotel.example/a.jpg"}},
        {"media": {"url": "https://hotel.example/a.jpg", "mimetype": "jpeg"}},
        {"media": {"url": "https://hotel.example/a.jpg", "mimetype": "image/jpeg", "size": 3}},
        {"media": "https://hotel.example/a.jpg"},
        {"media": {"url": "https://hotel.example/a.jpg", "mimetype": "image/jpeg"}, "text": "x" * 1025},
        {"author": "Front desk"},
    ],
)
def test_a_bad_media_body_is_a_422_and_writes_nothing(concierge: Concierge, body: dict[str, Any]) -> None:
    guest = _guest(concierge)
    before = len(concierge.items())

    status, answer = concierge.staff_message(guest["session_id"], body)

    assert (status, answer["error"]) == (422, "validation_error")
    assert len(concierge.items()) == before and concierge.queue_depth() == 0


def test_a_job_without_time_left_for_the_copy_comes_back_at_once(concierge: Concierge) -> None:
    """An invocation with too little time left hands the job back visible at once: the queue's own 180 s
    timeout would outlast WAHA's file."""
    guest = _guest(concierge)
    concierge.webhook(concierge.media_message())
    queue_url = concierge.resources.queue_urls["MediaQueue"]
    (message,) = concierge.sqs.receive_message(QueueUrl=queue_url, AttributeNames=["All"])["Messages"]
    event = {"Records": [sqs_record(message, concierge.resources.queue_arns["MediaQueue"])]}

    answer = concierge.handlers["FetchMediaFunction"](event, lambda_context("FetchMediaFunction", timeout_seconds=5))
    again = concierge.sqs.receive_message(QueueUrl=queue_url).get("Messages", [])

    assert answer == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    assert len(again) == 1 and _guest_message(concierge, guest)["media"]["pending"] is True


def test_a_copy_whose_guest_was_erased_meanwhile_is_deleted_from_the_bucket(concierge: Concierge) -> None:
    """The guest is erased while WAHA's (slow) file is being read: the copy's row is gone, so is the object."""
    guest = _guest(concierge)
    concierge.webhook(concierge.media_message())
    concierge.waha.set_fault("slow")
    copying = threading.Thread(target=concierge.copy_media)

    copying.start()
    time.sleep(0.3)
    erased, _ = concierge.erase(guest["user_id"])
    copying.join(timeout=10)

    listed = boto3.client("s3").list_objects_v2(Bucket=concierge.resources.bucket_names["MediaBucket"])
    assert erased == 204 and listed.get("KeyCount") == 0
    assert concierge.queue_depth("MediaQueue") == 0


def test_the_list_of_conversations_says_a_photo_without_caption_is_a_photo(concierge: Concierge) -> None:
    """With the bot quiet (handoff), the last message is the guest's photo: the preview names its type."""
    guest = _guest(concierge)
    concierge.staff_reply(guest["session_id"], "Please send a photo of the tap.")

    concierge.webhook(concierge.media_message(""))
    _, page = concierge.sessions()

    (entry,) = page["sessions"]
    assert entry["last_message"]["role"] == "User" and entry["last_message"]["text"] == ""
    assert entry["last_message"]["media"].startswith("image/")
