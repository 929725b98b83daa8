"""Bounds on every label of the per-queue families, so hostile or broken input cannot grow the series
without limit (`queue` is capped by the aggregate itself, `metrics.max_queues`).

- `event_category` is only `Management` or `Data`: any other value folds to the SQS guide's category
  for the event name (the seven message APIs `Data`, the rest `Management`).
- `event_name`, `error_code`, `account_id` and `region` each admit their first N distinct values; later
  ones read `(other)`.
- A global cap on the label sets of `api_calls` and `api_errors` together (`max_series`): past 90 % of it
  a new label set keeps its account, region and category and folds queue, event name and error code to
  `(other)`; at the cap itself account and region fold too, so the two families never hold more than
  `max_series + 3` label sets. Folding, not dropping: every call is still counted somewhere.

A value once admitted stays admitted and a folded one stays folded until the cap changes, so a label set
always lands in the same series. `learn` readmits what a restored checkpoint holds.
"""

from __future__ import annotations

from collections.abc import Iterable

from ...decode.record import DATA_EVENTS

OTHER = "(other)"
CATEGORIES = frozenset(("Management", "Data"))

# What real CloudTrail produces, for the defaults: SQS has about 25 API names, a few dozen error codes,
# and ~35 regions; accounts are those of one organization.
DEFAULT_MAX_EVENT_NAMES = 200
DEFAULT_MAX_ERROR_CODES = 200
DEFAULT_MAX_ACCOUNTS = 5000
DEFAULT_MAX_REGIONS = 100
DEFAULT_MAX_SERIES = 50_000

Key = tuple[str, ...]


class _Admit:
    """The first `limit` distinct values of one label; the rest are OTHER."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        seen = self.seen
        if value in seen or value == OTHER:
            return value
        if len(seen) < self.limit:
            seen.add(value)
            return value
        return OTHER


def category_of(name: str, category: str) -> str:
    """`Management` or `Data`: the record's value when it is one of them, else the SQS guide's table."""
    if category in CATEGORIES:
        return category
    return "Data" if name in DATA_EVENTS else "Management"


class LabelCaps:
    """Folds label values beyond their caps. Not thread-safe: used under the aggregate's lock."""

    def __init__(
        self,
        max_event_names: int = DEFAULT_MAX_EVENT_NAMES,
        max_error_codes: int = DEFAULT_MAX_ERROR_CODES,
        max_accounts: int = DEFAULT_MAX_ACCOUNTS,
        max_regions: int = DEFAULT_MAX_REGIONS,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> None:
        self.name = _Admit(max_event_names)
        self.code = _Admit(max_error_codes)
        self.account = _Admit(max_accounts)
        self.region = _Admit(max_regions)
        self.max_series = max_series
        self._soft = max_series - max_series // 10
        self.series: set[Key] = set()  # admitted label sets of api_calls and api_errors
        self.folded = 0  # label sets turned away by the series cap (each new one once)

    def labels(self, account: str, region: str, name: str, category: str) -> tuple[str, str, str, str]:
        """An event's account, region, event name and category with each label's cap applied."""
        return self.account(account), self.region(region), self.name(name), category_of(name, category)

    def call_key(self, key: Key) -> Key:
        """An api_calls label set (account, region, queue, event_name, category) under the series cap."""
        return self._admit(key, key[4])

    def error_key(self, key: Key) -> Key:
        """An api_errors label set (account, region, queue, event_name, error_code): the code capped,
        then the series cap."""
        if key in self.series and key[4] in self.code.seen:  # admitted before: itself (once per failed call)
            return key
        code = self.code(key[4])
        if code != key[4]:
            key = (*key[:4], code)
        return self._admit(key, OTHER)

    def _admit(self, key: Key, kept: str) -> Key:
        """`key` itself while there is room; else folded (`kept`: the last label's value when folded —
        a call keeps its category, an error's code folds)."""
        series = self.series
        if key in series:
            return key
        n = len(series)
        if n < self._soft:
            series.add(key)
            return key
        self.folded += 1
        mid = (key[0], key[1], OTHER, OTHER, kept)
        if mid in series or n < self.max_series:
            series.add(mid)
            return mid
        return (OTHER, OTHER, OTHER, OTHER, kept)

    def learn(self, calls: Iterable[Key], errors: Iterable[Key]) -> None:
        """Readmit the label sets (and their values) a restored checkpoint holds."""
        for key in calls:
            self.account(key[0])
            self.region(key[1])
            self.name(key[3])
            self.series.add(tuple(key))
        for key in errors:
            self.code(key[4])
            self.series.add(tuple(key))
