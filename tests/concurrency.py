"""Running calls at the same moment on threads, as many Lambda instances would, and reading what they left."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

from concierge import store
from devstack.resources import LocalResources


def table_items(resources: LocalResources) -> list[dict[str, Any]]:
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=resources.table_name)
    return [store.from_item(item) for page in pages for item in page["Items"]]


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Runs every call on its own thread, all released together; returns results or exceptions."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except Exception as error:  # the test inspects what each caller would see
            return error

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))
