"""A function's init phase (concierge.init_phase): no garbage collection while its modules and clients load in
Lambda, the collector back on when init ends, and what SnapStart's restore must not share between containers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from devstack.functions import LAYER_PYTHON_DIR
from devstack.template import REPO_ROOT, functions

# Runs in a fresh interpreter, as Lambda's runtime does: puts the function's folder and the layer on sys.path,
# imports the handler's module (its init), then runs the test's own lines with `module` in scope.
_LOADER = """
import gc, importlib.util, json, sys
sys.path[:0] = [{code_dir!r}, {layer!r}]
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
"""


def _run(logical_id: str, then: str, environment: dict[str, str], extra_path: Path | None = None) -> Any:
    spec = functions()[logical_id]
    code = _LOADER.format(code_dir=str(spec.code_dir), layer=str(LAYER_PYTHON_DIR), path=str(spec.code_dir / "app.py"))
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", **environment}
    env.pop("AWS_ENDPOINT_URL", None)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    done = subprocess.run(  # noqa: S603 - this interpreter, running the test's own code
        [sys.executable, "-c", code + textwrap.dedent(then)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


COLLECTOR = "print(json.dumps({'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count()}))"
IN_LAMBDA = {"AWS_LAMBDA_FUNCTION_NAME": "concierge-test"}


@pytest.mark.parametrize("logical_id", sorted(functions()))
def test_every_function_ends_its_init_with_the_collector_on_and_init_frozen(logical_id: str) -> None:
    """In Lambda, a function's module loads with the collector off and its last line turns it back on, after
    freezing what init made; a module that forgot would leave its container without garbage collection."""
    collector = _run(logical_id, COLLECTOR, IN_LAMBDA)

    assert collector["enabled"] is True
    if logical_id != "ConsoleFunction":  # static files only: it loads nothing of ours
        assert collector["frozen"] > 10_000


# The AWS clients each function's first request would otherwise create (none for the authorizer and the console).
CLIENTS_MADE_IN_INIT = {
    "RegisterGuestFunction": {"dynamodb", "sqs"},
    "WahaWebhookFunction": {"dynamodb", "sqs", "ssm"},
    "GuestMessagesFunction": {"dynamodb"},
    "ConversationsFunction": {"dynamodb", "sqs"},
    "HealthFunction": {"dynamodb", "sqs"},
    "EraseGuestFunction": {"dynamodb", "s3"},
    "SendWhatsappFunction": {"dynamodb", "sqs", "ssm"},
    "FetchMediaFunction": {"dynamodb", "sqs", "s3", "ssm"},
    "SweepOutboxFunction": {"dynamodb", "sqs"},
    "CloseStaysFunction": {"dynamodb"},
    "ExpireClosedStaysFunction": {"dynamodb"},
}


@pytest.mark.parametrize("logical_id", sorted(CLIENTS_MADE_IN_INIT))
def test_the_aws_clients_are_made_during_init(logical_id: str) -> None:
    """A function's init creates the clients its requests use (SSM when a secret is read from it), so its first
    request does not, and a SnapStart snapshot holds them."""
    then = """
    from concierge import aws_clients
    made = sorted(name for name in ("dynamodb", "sqs", "ssm", "s3") if getattr(aws_clients, name).cache_info().currsize)
    print(json.dumps(made))
    """
    by_reference = {"WAHA_WEBHOOK_HMAC_KEY_PARAM": "/test/hmac", "WAHA_API_KEY_PARAM": "/test/waha"}
    environment = {**IN_LAMBDA, **by_reference, "WAHA_WEBHOOK_HMAC_KEY": "", "WAHA_API_KEY": ""}

    assert set(_run(logical_id, then, environment)) == CLIENTS_MADE_IN_INIT[logical_id]


def test_outside_lambda_the_collector_is_left_alone() -> None:
    """Tests, the local stack and tools import the same modules: nothing is paused or frozen there."""
    collector = _run("RegisterGuestFunction", COLLECTOR, {"AWS_LAMBDA_FUNCTION_NAME": ""})

    assert collector == {"enabled": True, "frozen": 0}


# The runtime's library (part of Lambda's python3.12+ runtimes, not installable here), as the functions use it:
# register_after_restore(callable), run by Lambda after each restore from the snapshot.
FAKE_SNAPSHOT_RESTORE = """
registered = []


def register_after_restore(func, *args, **kwargs):
    registered.append((func, args, kwargs))


def register_before_snapshot(func, *args, **kwargs):
    pass


def restore():
    for func, args, kwargs in registered:
        func(*args, **kwargs)
"""


@pytest.fixture
def snapshot_runtime(tmp_path: Path) -> Path:
    (tmp_path / "snapshot_restore_py.py").write_text(FAKE_SNAPSHOT_RESTORE)
    return tmp_path


def test_containers_restored_from_one_snapshot_draw_their_own_jitter(snapshot_runtime: Path) -> None:
    """Two containers restored from one snapshot start from the same random state; after the restore hooks each
    draws its own retry jitter."""
    then = """
    import random, snapshot_restore_py
    snapshot = random.getstate()
    draws = []
    for _ in range(2):
        random.setstate(snapshot)
        snapshot_restore_py.restore()
        draws.append(random.random())
    print(json.dumps(draws))
    """
    first, second = _run("RegisterGuestFunction", then, IN_LAMBDA, snapshot_runtime)

    assert first != second


def test_a_restored_container_opens_its_own_connections_to_waha(snapshot_runtime: Path) -> None:
    """The sender's WAHA client (its urllib3 pool) is not the snapshot's after a restore."""
    then = """
    import snapshot_restore_py
    from concierge.sending import waha
    before = waha.client()
    snapshot_restore_py.restore()
    print(json.dumps(waha.client() is not before and waha.client().pool is not before.pool))
    """
    assert _run("SendWhatsappFunction", then, {**IN_LAMBDA, "TABLE_NAME": "test"}, snapshot_runtime) is True


def test_a_restored_container_reads_the_webhook_key_again(snapshot_runtime: Path) -> None:
    """A key read before the snapshot (or rotated since) is read from SSM again in each restored container."""
    then = """
    import boto3, snapshot_restore_py
    from moto import mock_aws
    from concierge import aws_clients, secrets
    with mock_aws():
        aws_clients.reset()
        ssm = boto3.client("ssm")
        ssm.put_parameter(Name="/test/hmac", Type="SecureString", Value="before-snapshot")
        first = secrets.secret("WAHA_WEBHOOK_HMAC_KEY")
        ssm.put_parameter(Name="/test/hmac", Type="SecureString", Value="rotated", Overwrite=True)
        cached = secrets.secret("WAHA_WEBHOOK_HMAC_KEY")
        snapshot_restore_py.restore()
        print(json.dumps([first, cached, secrets.secret("WAHA_WEBHOOK_HMAC_KEY")]))
    """
    environment = {
        **IN_LAMBDA,
        "WAHA_WEBHOOK_HMAC_KEY": "",
        "WAHA_WEBHOOK_HMAC_KEY_PARAM": "/test/hmac",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    assert _run("WahaWebhookFunction", then, environment, snapshot_runtime) == [
        "before-snapshot",
        "before-snapshot",
        "rotated",
    ]
