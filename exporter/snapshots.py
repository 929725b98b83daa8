"""What a checkpoint writes of the persistent components: what changed since the last successful commit.

Each `Persistent` is saved under its `state_key`; a sectioned one as parts, each under `state_key/part`.
Every checkpoint encodes every part, but writes only those whose bytes differ from what the last
successful commit left in the store (a digest of each is remembered), and deletes the parts that are
gone, in the checkpoint's own transaction: the state on disk is always one whole snapshot, consistent
with the progress saved beside it. After a failed commit nothing counts as written, so the retry compares
against the same last success and writes everything that differs from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import msgspec

from .interfaces import Persistent
from .state import Op, StateStore

_encode = msgspec.json.Encoder().encode


def _digest(blob: bytes) -> bytes:
    return hashlib.blake2b(blob, digest_size=16).digest()


def sectioned(p: Persistent) -> bool:
    return bool(getattr(p, "sectioned", False))


class Snapshots:
    """Loads the persistent components' saved state, and gives each checkpoint the ops that bring the
    store from the last committed snapshot to the current one."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        # key → digest of the value the store holds under it (None: unknown, so written again)
        self._written: dict[str, bytes | None] = {}
        self._staged: dict[str, bytes | None] | None = None  # what the checkpoint in flight writes

    def load(self, p: Persistent) -> Any:
        """The saved snapshot of `p` for its `restore()`, None when there is none. For a sectioned one,
        its parts by name, or the single blob of a state file written before sections existed."""
        store, key = self.store, p.state_key
        blob = store.get_blob(key)
        if not sectioned(p):
            if blob is None:
                return None
            self._written[key] = _digest(blob)
            return store.decode(key, blob)
        parts = store.blobs_under(key + "/")
        if blob is not None:
            # A single blob beside parts was written by an older release after this one wrote the parts
            # (writing parts deletes it): it is the newer state. The next checkpoint rewrites every part
            # and deletes the blob.
            self._written.update(dict.fromkeys((f"{key}/{name}" for name in parts), None))
            self._written[key] = None
            return store.decode(key, blob)
        if not parts:
            return None
        self._written.update({f"{key}/{name}": _digest(b) for name, b in parts.items()})
        return {name: store.decode(f"{key}/{name}", b) for name, b in parts.items()}

    def ops(self, persistents: Iterable[Persistent]) -> list[Op]:
        """The writes and deletes of this checkpoint; `committed()` once they are committed."""
        written = self._written
        staged: dict[str, bytes | None] = {}
        ops: list[Op] = []
        for p in persistents:
            snap = p.snapshot()
            key = p.state_key
            items = ((f"{key}/{name}", v) for name, v in snap.items()) if sectioned(p) else ((key, snap),)
            for k, value in items:
                blob = _encode(value)
                digest = staged[k] = _digest(blob)
                if written.get(k) != digest:
                    ops.append(StateStore.blob_op(k, blob))
        ops.extend(StateStore.delete_op(k) for k in written.keys() - staged.keys())
        self._staged = staged
        return ops

    def committed(self) -> None:
        """The ops of the last `ops()` are committed: they are now what the store holds."""
        if self._staged is not None:
            self._written, self._staged = self._staged, None
