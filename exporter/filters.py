"""Which queues and accounts the exporter counts at all (metrics.include/exclude_*).

Applied by the pipeline before any sink sees a call, so every sink counts and exports the same calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .cache import BoundedCache
from .model import NO_QUEUE, Call


class Filters:
    """include/exclude regexes on queue names and lists of account ids, with per-name caching."""

    def __init__(
        self,
        include_queues: str | None = None,
        exclude_queues: str | None = None,
        include_accounts: Iterable[str] | None = None,
        exclude_accounts: Iterable[str] | None = None,
    ) -> None:
        self._inc = re.compile(include_queues) if include_queues else None
        self._exc = re.compile(exclude_queues) if exclude_queues else None
        self._inc_acc = frozenset(include_accounts) if include_accounts is not None else None
        self._exc_acc = frozenset(exclude_accounts or ())
        self._cache: BoundedCache[tuple[str, str], bool] = BoundedCache(200_000)
        self.active = bool(self._inc or self._exc or self._inc_acc is not None or self._exc_acc)

    def keep(self, account: str, queue: str) -> bool:
        key = (account, queue)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache.put(key, self._decide(account, queue))
        return hit

    def select(self, calls: list[Call], raws: list[Any]) -> tuple[list[Call], list[Any]]:
        """The calls these filters keep (and their raw records, when there are any)."""
        keep = self.keep
        flags = [keep(c.labels.account_id, c.labels.queue) for c in calls]
        if all(flags):
            return calls, raws
        kept = [c for c, k in zip(calls, flags, strict=True) if k]
        return kept, ([r for r, k in zip(raws, flags, strict=True) if k] if raws else raws)

    def _decide(self, account: str, queue: str) -> bool:
        if self._inc_acc is not None and account not in self._inc_acc:
            return False
        if account in self._exc_acc:
            return False
        if queue == NO_QUEUE:  # queue filters apply to named queues; account-wide calls stay
            return True
        if self._inc is not None and not self._inc.search(queue):
            return False
        return not (self._exc is not None and self._exc.search(queue))
