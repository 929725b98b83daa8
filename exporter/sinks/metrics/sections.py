"""The aggregate's snapshot in parts that change independently, so that a checkpoint writes only the
parts an object touched (exporter.snapshots): the rows of every per-queue table (calls, errors, batch
entries, principals, the access map's series) in one part per group of queues, and the small tables
(newest event times, lag, the admitted queues, the caller accounts) in parts of their own.

A queue's group is a hash of its (account, region, queue), fixed: it does not depend on the other queues,
so a queue's rows stay in the same part from one checkpoint and one process to the next.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

GROUPS = 256  # at the default 1,000 queues, about 4 queues a part
HEAD = "head"  # always present in a sectioned snapshot; never a field of the single-blob layout
VERSION = 2
# the fields whose rows start with (account, region, queue), at the top and in the access map's snapshot
QUEUE_ROWS = ("calls", "errors", "batch", "principals")
ACCESS_QUEUE_ROWS = ("principal_calls", "cross_account", "policy_changes", "encryption_changes", "named")
OWN_PART = ("queues",)  # large, and changes only when a queue is admitted


def split(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Part name → part (a dict holding some of `snap`'s fields, or some of their rows)."""
    parts: dict[str, dict[str, Any]] = {HEAD: {"v": VERSION}}
    names: dict[tuple[str, ...], str] = {}

    def group(row: list[Any]) -> dict[str, Any]:
        qkey = tuple(row[:3])
        name = names.get(qkey)
        if name is None:
            name = names[qkey] = f"q/{zlib.crc32(chr(0).join(qkey).encode()) % GROUPS:02x}"
        part = parts.get(name)
        if part is None:
            part = parts[name] = {}
        return part

    def spread(rows: Iterable[list[Any]], field: str, access: bool) -> None:
        for row in rows:
            part = group(row)
            if access:
                part = part.setdefault("access", {})
            part.setdefault(field, []).append(row)

    for field, value in snap.items():
        if field in QUEUE_ROWS:
            spread(value, field, False)
        elif field == "access":
            rest = {}
            for f, v in value.items():
                if f in ACCESS_QUEUE_ROWS:
                    spread(v, f, True)
                else:
                    rest[f] = v
            parts["access"] = {"access": rest}
        elif field in OWN_PART:
            parts[field] = {field: value}
        elif field != "v":
            parts[HEAD][field] = value
    return parts


def join(snap: dict[str, Any]) -> dict[str, Any]:
    """The snapshot whose parts `split` made, whole again; a snapshot saved as a single blob (a state
    file from before sections) as it is."""
    if not isinstance(snap.get(HEAD), dict):
        return snap
    whole: dict[str, Any] = {}
    for part in snap.values():
        _merge(whole, part)
    return whole


def _merge(into: dict[str, Any], part: dict[str, Any]) -> None:
    """Lists of rows are concatenated, dicts merged field by field; anything else is in one part only."""
    for field, value in part.items():
        have = into.get(field)
        if isinstance(value, list) and isinstance(have, list):
            have.extend(value)
        elif isinstance(value, dict) and isinstance(have, dict):
            _merge(have, value)
        elif isinstance(value, dict):
            into[field] = {}
            _merge(into[field], value)
        elif isinstance(value, list):
            into[field] = list(value)
        else:
            into[field] = value
