"""devstack/waha_spec/ holds unchanged copies of WAHA reference files; this keeps them honest."""

from __future__ import annotations

import json
from pathlib import Path

SPEC_COPY = Path(__file__).resolve().parents[2] / "devstack" / "waha_spec"
SHARED_WAHA = Path(__file__).resolve().parents[3] / "shared" / "waha"

# What the simulator reads from each copy: without these keys it could not work at all.
EXPECTED_KEYS = {
    "sendText-request.schema.json": {"MessageTextRequest"},
    "webhook-envelope.docs-example.json": {
        "id",
        "timestamp",
        "event",
        "session",
        "metadata",
        "me",
        "payload",
        "environment",
        "engine",
    },
    "webhook-hmac.test-vector.json": {"rawBody", "key", "headers"},
    "openapi-excerpt.json": {"paths", "components"},
    "webhook-message-media.docs-example.json": {"event", "session", "payload"},
}


def test_spec_copies_are_the_expected_files_and_parse() -> None:
    """The copies are exactly the files the simulator loads, each valid JSON with the keys it reads."""
    # GIVEN the copies next to the simulator
    copies = {path.name: path for path in SPEC_COPY.glob("*.json")}
    # WHEN / THEN they are the expected set, each parses and has its keys
    assert set(copies) == set(EXPECTED_KEYS)
    for name, keys in EXPECTED_KEYS.items():
        document = json.loads(copies[name].read_text(encoding="utf-8"))
        assert keys <= set(document), f"{name} lacks {keys - set(document)}"
    schema = json.loads(copies["sendText-request.schema.json"].read_text(encoding="utf-8"))["MessageTextRequest"]
    assert set(schema["required"]) == {"chatId", "text", "session"}


def test_spec_copies_match_the_shared_reference_when_present() -> None:
    """Each copy equals, byte for byte, the same-named file in ../shared/waha (when that folder exists)."""
    # GIVEN the copies, and the shared reference if this checkout has it
    copies = sorted(SPEC_COPY.glob("*.json"))
    assert copies, "devstack/waha_spec has no JSON files"
    if not SHARED_WAHA.is_dir():
        # Without the reference there is nothing to compare to; the copies must at least still load.
        for path in copies:
            json.loads(path.read_text(encoding="utf-8"))
        return
    # WHEN each copy is compared with its original
    differing = [path.name for path in copies if path.read_bytes() != (SHARED_WAHA / path.name).read_bytes()]
    # THEN none has drifted
    assert differing == []
