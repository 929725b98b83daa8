"""A bounded memo for the caches of derived values (queue names, principals, time stamps, label slots)."""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(dict[K, V], Generic[K, V]):
    """A dict that empties itself when it reaches `limit` entries.

    Every value kept here can be computed again from its key, so forgetting is always safe; emptying
    everything (rather than evicting one entry) keeps `put` to two dict operations, and the working set of a
    real trail (a few thousand queues, callers, seconds) fills the cache again at once. A dict subclass so
    that lookups stay `dict.get` speed, also from C.
    """

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: K, value: V) -> V:
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
