"""The WAHA simulator's media: guests' files served at /api/files/ behind the key until they expire, inbound
messages with a file, and sendImage / sendFile validated against WAHA's request schemas."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

from devstack.stack import StackConfig
from devstack.waha_sim import SAMPLE_JPEG, InboundMedia, WahaSimulator
from tests.unit.test_waha_sim import Receiver, needs_shared_reference, openapi_validator

API_KEY = "sim-key"
CHAT = "6281234567890@c.us"


@pytest.fixture
def http() -> urllib3.PoolManager:
    return urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1.0, read=2.0))


@pytest.fixture
def sim() -> Iterator[WahaSimulator]:
    with WahaSimulator(api_key=API_KEY) as simulator:
        yield simulator


def _post(http: urllib3.PoolManager, url: str, body: Any, key: str | None = API_KEY) -> urllib3.BaseHTTPResponse:
    headers = {"Content-Type": "application/json", **({"X-Api-Key": key} if key else {})}
    return http.request("POST", url, body=json.dumps(body).encode(), headers=headers)


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


# --- files ----------------------------------------------------------------------------------------------


def test_a_kept_file_is_served_with_the_key_only(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    media = sim.keep_file("false_6281234567890@c.us_AAAA", InboundMedia("application/pdf", "bill.pdf", b"%PDF-1.7"))

    with_key = http.request("GET", media["url"], headers={"X-Api-Key": API_KEY})
    without = http.request("GET", media["url"])

    assert media == {"url": media["url"], "mimetype": "application/pdf", "filename": "bill.pdf", "error": None}
    assert _path(media["url"]).startswith("/api/files/") and media["url"].endswith(".pdf")
    assert (with_key.status, with_key.data, with_key.headers["Content-Type"]) == (200, b"%PDF-1.7", "application/pdf")
    assert without.status == 401


def test_files_expire_after_their_lifetime_as_waha_deletes_them(http: urllib3.PoolManager) -> None:
    with WahaSimulator(files_lifetime_seconds=0.2) as sim:
        media = sim.keep_file("id1", InboundMedia())
        fresh = http.request("GET", media["url"])
        time.sleep(0.3)
        stale = http.request("GET", media["url"])

    assert (fresh.status, fresh.data) == (200, SAMPLE_JPEG)
    assert stale.status == 404 and stale.json()["statusCode"] == 404


def test_expire_files_deletes_every_file_at_once(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    media = sim.keep_file("id2", InboundMedia())

    sim.expire_files()

    assert http.request("GET", media["url"], headers={"X-Api-Key": API_KEY}).status == 404


def test_whatsapp_files_lifetime_sets_the_local_simulators_lifetime() -> None:
    assert StackConfig.from_env({"WHATSAPP_FILES_LIFETIME": "5"}).waha_sim_files_lifetime_seconds == 5.0
    assert StackConfig.from_env({}).waha_sim_files_lifetime_seconds == 180.0
    with pytest.raises(ValueError, match="WHATSAPP_FILES_LIFETIME"):
        StackConfig.from_env({"WHATSAPP_FILES_LIFETIME": "-1"})


# --- inbound messages with a file -----------------------------------------------------------------------


@needs_shared_reference
def test_inbound_with_a_file_posts_wahas_media_message(http: urllib3.PoolManager) -> None:
    """POST /api/sim/inbound with media: a `message` with hasMedia, WAHA's WAMessage shape (its docs' example
    sends `error: null`), and the file at media.url."""
    validator = openapi_validator("WAHAWebhookMessage")
    with Receiver() as receiver, WahaSimulator(webhook_url=receiver.url) as sim:
        photo = base64.b64encode(b"photo bytes").decode()
        answer = _post(
            http,
            f"{sim.url}/api/sim/inbound",
            {
                "phone": "081234567890",
                "text": "My view",
                "media": {"mimetype": "image/png", "filename": "v.png", "data": photo},
            },
        )
        envelope = receiver.received[-1].envelope
        payload = envelope["payload"]
        served = http.request("GET", payload["media"]["url"])

    assert answer.status == 200 and answer.json()["delivered"] is True
    assert (payload["hasMedia"], payload["body"], payload["media"]["mimetype"]) == (True, "My view", "image/png")
    assert payload["media"]["filename"] == "v.png"
    assert (served.status, served.data) == (200, b"photo bytes")
    nullable_error = json.loads(json.dumps(envelope).replace('"error": null', '"error": {}'))
    assert list(validator.iter_errors(nullable_error)) == []


def test_inbound_media_that_waha_could_not_download_has_no_url(http: urllib3.PoolManager) -> None:
    with Receiver() as receiver, WahaSimulator(webhook_url=receiver.url) as sim:
        failed = _post(http, f"{sim.url}/api/sim/inbound", {"phone": "081234567890", "media": {"error": "timeout"}})
        failed_media = receiver.received[-1].envelope["payload"]["media"]
        null_url = _post(http, f"{sim.url}/api/sim/inbound", {"phone": "081234567890", "media": {"url": None}})
        null_media = receiver.received[-1].envelope["payload"]["media"]

    assert failed.status == null_url.status == 200
    assert (failed_media["url"], failed_media["error"]) == (None, {"message": "timeout"})
    assert (null_media["url"], null_media["error"]) == (None, None)


@pytest.mark.parametrize(
    "media",
    ["a.jpg", {"mimetype": "jpeg"}, {"data": "not base64!"}, {"url": "http://x/a.jpg"}, {"size": 1}],
)
def test_bad_inbound_media_is_a_400(sim: WahaSimulator, http: urllib3.PoolManager, media: Any) -> None:
    answer = _post(http, f"{sim.url}/api/sim/inbound", {"phone": "081234567890", "media": media})

    assert answer.status == 400 and answer.json()["statusCode"] == 400


# --- sendImage and sendFile -------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "mimetype"), [("/api/sendImage", "image/jpeg"), ("/api/sendFile", "text/csv")])
def test_send_image_and_file_are_recorded_with_their_file(
    sim: WahaSimulator, http: urllib3.PoolManager, path: str, mimetype: str
) -> None:
    file = {"url": "https://hotel.example/x", "mimetype": mimetype, "filename": "x"}

    answer = _post(http, sim.url + path, {"chatId": CHAT, "file": file, "caption": "Here", "session": "default"})
    (sent,) = sim.sent_messages()
    (in_chat,) = sim.chat_messages(CHAT)

    assert answer.status == 201 and answer.json()["hasMedia"] is True
    assert (sent["text"], sent["file"], sent["chatId"]) == ("Here", file, CHAT)
    assert (in_chat["hasMedia"], in_chat["body"], in_chat["fromMe"]) == (True, "Here", True)


@pytest.mark.parametrize(
    "body",
    [
        {"chatId": CHAT, "session": "default"},
        {"chatId": CHAT, "session": "default", "file": {"url": "https://hotel.example/x"}},
        {"chatId": CHAT, "session": "default", "file": {"mimetype": "image/png"}},
        {"chatId": CHAT, "session": "default", "file": {"url": "https://h/x", "mimetype": "image/png"}, "caption": 3},
    ],
)
def test_invalid_media_sends_answer_400_and_record_nothing(
    sim: WahaSimulator, http: urllib3.PoolManager, body: dict[str, Any]
) -> None:
    answer = _post(http, sim.url + "/api/sendImage", body)

    assert answer.status == 400 and sim.sent_messages() == []


def test_media_sends_need_the_key(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    file = {"url": "https://hotel.example/x.png", "mimetype": "image/png"}

    answer = _post(http, sim.url + "/api/sendImage", {"chatId": CHAT, "file": file, "session": "default"}, key=None)

    assert answer.status == 401 and sim.sent_messages() == []
