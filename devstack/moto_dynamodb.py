"""Makes the in-process moto server's DynamoDB atomic under concurrent requests, as DynamoDB is.

moto's server answers requests on threads and its TransactWriteItems takes no lock: it deep-copies
the whole table while other requests change it (HTTP 500 "dictionary changed size during iteration"),
and a cancelled transaction puts that copy back, erasing what other requests wrote meanwhile. Our
code relies on DynamoDB's guarantees (the webhook's dedupe marker, the registration's conditions),
so the local stand-in must give them: one DynamoDB request at a time, and a cancelled transaction
restores only the items it names. Copying only those items also keeps a transaction's cost
independent of the table's size (moto copies the whole table, which makes long runs quadratic).
docs/reliability.md has the measurements that showed the loss.
"""

from __future__ import annotations

import copy
import threading
from types import SimpleNamespace
from typing import Any

import moto.dynamodb.models as moto_dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

_install_lock = threading.Lock()
_installed = False


def _transaction_keys(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    """(table, hash key, range key) of every item a TransactWriteItems request names."""
    named = []
    for entry in transact_items:
        (operation,) = entry.values()
        table = backend.tables.get(operation.get("TableName"))
        attributes = operation.get("Item") or operation.get("Key") or {}
        if table is None or table.hash_key_attr not in attributes:
            continue
        range_key = attributes.get(table.range_key_attr) if table.range_key_attr else None
        named.append((table, DynamoType(attributes[table.hash_key_attr]), range_key and DynamoType(range_key)))
    return named


def install() -> None:
    """Patches moto in this process, once; every moto server started here afterwards is atomic."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True

    request_lock = threading.Lock()
    unlocked = DynamoHandler.call_action
    all_or_nothing = DynamoDBBackend.transact_write_items
    real_deepcopy = copy.deepcopy

    def call_action(self: DynamoHandler) -> Any:
        with request_lock:
            return unlocked(self)

    def deepcopy_but_tables(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else real_deepcopy(value, memo)

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        before = [
            (table, hash_key, range_key, real_deepcopy(table.get_item(hash_key, range_key)))
            for table, hash_key, range_key in _transaction_keys(self, transact_items)
        ]
        try:
            all_or_nothing(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(before):
                if item is None:
                    table.delete_item(hash_key, range_key)
                elif range_key is None:
                    table.items[hash_key] = item
                else:
                    table.items[hash_key][range_key] = item
            raise

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    # moto's own whole-table snapshot becomes the live table (its rollback then reassigns the same object).
    moto_dynamodb_models.copy = SimpleNamespace(deepcopy=deepcopy_but_tables)  # type: ignore[attr-defined]
