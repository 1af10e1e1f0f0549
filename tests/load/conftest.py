"""The load test's switch between its everyday size and the full run behind `make test-load`."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    # Only read when tests/load is on the command line (as `make test-load` does); a plain `pytest` from the root
    # never passes the flag, and the test reads it with a default, so it runs at its small size there.
    parser.addoption(
        "--load-full",
        action="store_true",
        default=False,
        help="run the load test at full size (1,000 messages, 50 guests, 20 senders) and write docs/reliability.md",
    )


@pytest.fixture
def load_full(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--load-full", default=False))
