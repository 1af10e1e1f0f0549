"""DynamoDB capacity of a flow's calls, by DynamoDB's published sizing rules, from the items as they were before
and after the flow: 1 WRU per KB of the larger image of a written item (twice inside a transaction), 0.5 RRU per
4 KB read eventually consistent and 1 strongly consistent, and for each global secondary index of template.yaml
1 WRU per KB of an entry (+100 bytes) added, changed or removed, twice when its index key moved.
"""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from functools import cache
from typing import Any

from bench.calls import CallRecord
from devstack.template import resources_of_type

Key = tuple[str, str]
Images = dict[Key, dict[str, Any]]


def value_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value ({"S": ...}, {"N": ...}, ...)."""
    ((kind, content),) = value.items()
    if kind in ("S", "SS"):
        return sum(len(text.encode()) for text in ([content] if kind == "S" else content))
    if kind in ("N", "NS"):
        numbers = [content] if kind == "N" else content
        digits = [str(abs(Decimal(n))).replace(".", "").strip("0") or "0" for n in numbers]
        return sum(math.ceil(len(d) / 2) + 1 for d in digits)
    if kind in ("B", "BS"):
        return sum(map(len, [content] if kind == "B" else content))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(value_size(item) + 1 for item in content)
    return 3 + sum(len(name.encode()) + value_size(item) + 1 for name, item in content.items())  # M


def item_size(item: dict[str, dict[str, Any]]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, consistent: bool) -> float:
    return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)


def _key(values: dict[str, Any]) -> Key:
    return values["pk"]["S"], values["sk"]["S"]


@cache
def _indexes() -> list[tuple[str, tuple[str, ...], set[str] | None]]:
    """(name, key attributes, projected attributes or None for ALL) of the table's global secondary indexes."""
    (table,) = resources_of_type("AWS::DynamoDB::Table").values()
    found = []
    for index in table["Properties"].get("GlobalSecondaryIndexes", []):
        keys = tuple(part["AttributeName"] for part in index["KeySchema"])
        projection = index["Projection"]
        names = None if projection["ProjectionType"] == "ALL" else {"pk", "sk", *keys}
        found.append((index["IndexName"], keys, names | set(projection.get("NonKeyAttributes", ())) if names else None))
    return found


def _index_units(keys: tuple[str, ...], names: set[str] | None, old: Any, new: Any) -> int:
    def entry(item: Any) -> dict[str, Any] | None:
        if item is None or not all(name in item for name in keys):  # sparse: only items with its keys
            return None
        return item if names is None else {name: value for name, value in item.items() if name in names}

    def units(projected: dict[str, Any]) -> int:
        return write_units(item_size(projected) + 100)

    before, after = entry(old), entry(new)
    if before and after:
        moved = any(old[name] != new[name] for name in keys)
        return units(before) + units(after) if moved else (units(after) if before != after else 0)
    return units(before or after) if (before or after) else 0


def touched(records: list[CallRecord]) -> set[Key]:
    """The keys the recorded calls wrote, checked or read by key."""
    found: set[Key] = set()
    for record in records:
        if not record.operation.startswith("DynamoDB."):
            continue
        params = record.params or {}
        bodies = [body for action in params.get("TransactItems", []) for body in action.values()]
        for request in params.get("RequestItems", {}).values():
            if isinstance(request, dict):  # BatchGetItem
                found.update(map(_key, request.get("Keys", [])))
            else:  # BatchWriteItem
                bodies += [body for entry in request for body in entry.values()]
        bodies += [params] if "Item" in params or "Key" in params else []
        found.update(_key(body.get("Item") or body["Key"]) for body in bodies)
    return found


def of_flow(records: list[CallRecord], before: Images, after: Images) -> dict[str, Any]:
    """WRU, RRU, index WRU (in all and by index), SQS requests and pricing notes of one flow."""
    wru, rru, sqs, notes = 0.0, 0.0, 0, set()

    def size(body: dict[str, Any]) -> int:
        # The larger of the item before and after; one the flow neither found nor left costs the least a write does.
        key = _key(body.get("Item") or body["Key"])
        images = [item for item in (before.get(key), after.get(key), body.get("Item")) if item is not None]
        return max(map(item_size, images), default=1024)

    for record in records:
        service, operation = record.operation.split(".", 1)
        params, answer = record.params or {}, record.response or {}
        if service == "SQS":
            sqs += 1
        elif operation == "TransactWriteItems":
            wru += sum(2 * write_units(size(body)) for action in params["TransactItems"] for body in action.values())
            if record.error:
                notes.add("a cancelled transaction is priced as if it had written (upper bound)")
        elif operation in ("PutItem", "UpdateItem", "DeleteItem"):
            wru += write_units(size(params))
        elif operation == "BatchWriteItem":
            wru += sum(write_units(size(b)) for r in params["RequestItems"].values() for e in r for b in e.values())
        elif operation == "GetItem":
            rru += read_units(item_size(answer.get("Item") or {}), bool(params.get("ConsistentRead")))
        elif operation == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                consistent = bool(request.get("ConsistentRead"))
                rru += sum(
                    read_units(item_size(item), consistent) for item in answer.get("Responses", {}).get(table, [])
                )
        elif operation in ("Query", "Scan"):
            rru += read_units(sum(map(item_size, answer.get("Items", []))), bool(params.get("ConsistentRead")))
            if "FilterExpression" in params or "ProjectionExpression" in params:
                notes.add(
                    "a Query with a filter or projection is priced by what it returned (DynamoDB bills what it read)"
                )
        elif service != "SSM":
            notes.add(f"{record.operation} is not priced")
    by_index: Counter[str] = Counter()
    for key in before.keys() | after.keys():
        for name, keys, names in _indexes() if before.get(key) != after.get(key) else ():
            by_index[name] += _index_units(keys, names, before.get(key), after.get(key))
    by_index = +by_index
    return {"wru": wru, "rru": rru, "index_wru": sum(by_index.values()), "index_wru_by_index": dict(by_index)} | {
        "sqs_requests": sqs,
        "notes": sorted(notes),
    }
