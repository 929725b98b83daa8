"""Who calls each queue: the access map, cross-account calls, and changes of exposure and encryption.

State is plain dicts keyed by label tuples, like the aggregate's, and saved with it at each checkpoint.
Cardinality is bounded: a queue's first `max_series` principals keep series of their own (and keep them
across restarts, since the admitted set is saved too); later ones fold into `(other)`. Caller accounts
are capped globally the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

OTHER = "(other)"
ANONYMOUS = "anonymous"
SUCCESS, ERROR = "success", "error"

QueueKey = tuple[str, str, str]  # account, region, queue
# Asked when a queue admits a principal beyond what this process knows (several replicas: Redis decides,
# so every replica names the same principals); returns whether it may have a series of its own.
Admit = Callable[[QueueKey, str, int], bool]


class AccessMap:
    def __init__(self, max_series: int = 10, max_caller_accounts: int = 1000, admit: Admit | None = None) -> None:
        self.max_series = max_series
        self.max_caller_accounts = max_caller_accounts
        self.admit = admit
        # series → a one-item list holding its count: the metrics sink keeps the cell of each call's series
        # with its other keys and adds to it without hashing the labels again
        self.principal_cells: dict[tuple[str, ...], list[int]] = {}
        self.cross_cells: dict[tuple[str, ...], list[int]] = {}
        self.policy_changes: dict[tuple[str, str, str, str], int] = {}
        self.encryption_changes: dict[tuple[str, str, str, str], int] = {}
        self.named: dict[QueueKey, set[str]] = {}  # principals with a series of their own, per queue
        self.callers: set[str] = set()  # caller accounts with a series of their own

    @property
    def principal_calls(self) -> dict[tuple[str, ...], int]:
        return {k: c[0] for k, c in self.principal_cells.items() if c[0]}

    @property
    def cross_account(self) -> dict[tuple[str, ...], int]:
        return {k: c[0] for k, c in self.cross_cells.items() if c[0]}

    @staticmethod
    def cell(cells: dict[tuple[str, ...], list[int]], key: tuple[str, ...]) -> list[int]:
        """The counter cell of a series (created at 0; a series is exported once it counts)."""
        c = cells.get(key)
        if c is None:
            c = cells[key] = [0]
        return c

    @property
    def enabled(self) -> bool:
        return self.max_series > 0

    def principal_label(self, qkey: QueueKey, principal: str) -> str:
        """The principal's label on this queue: its own once admitted (now, if the queue has room), else
        `(other)`."""
        named = self.named.get(qkey)
        if named is None:
            named = self.named[qkey] = set()
        if principal in named:
            return principal
        if len(named) >= self.max_series:
            return OTHER
        if self.admit is not None and not self.admit(qkey, principal, self.max_series):
            return OTHER
        named.add(principal)
        return principal

    def caller_label(self, account: str) -> str:
        if account in self.callers:
            return account
        if len(self.callers) >= self.max_caller_accounts:
            return OTHER
        self.callers.add(account)
        return account

    def count_change(self, qkey: QueueKey, exposure: str | None, encryption: str | None) -> None:
        """One successful call that set a queue's exposure and/or encryption."""
        account, region, queue = qkey
        if exposure is not None:
            xkey = (account, region, queue, exposure)
            self.policy_changes[xkey] = self.policy_changes.get(xkey, 0) + 1
        if encryption is not None:
            ekey = (account, region, queue, encryption)
            self.encryption_changes[ekey] = self.encryption_changes.get(ekey, 0) + 1

    def add(
        self,
        qkey: QueueKey,
        event_name: str,
        error: str | None,
        principal: str | None,
        caller_account: str | None,
        exposure: str | None = None,
        encryption: str | None = None,
    ) -> None:
        """Count one call. `principal` at the configured granularity (None: an unidentified caller,
        counted under `(other)`); `caller_account` None for AWS service callers."""
        account, region, queue = qkey
        if self.max_series > 0:
            who = OTHER if principal is None else self.principal_label(qkey, principal)
            pkey = (account, region, queue, who, ERROR if error else SUCCESS)
            self.cell(self.principal_cells, pkey)[0] += 1
        if caller_account is not None and caller_account != account:
            ckey = (account, region, queue, self.caller_label(caller_account), event_name)
            self.cell(self.cross_cells, ckey)[0] += 1
        if error is None:
            self.count_change(qkey, exposure, encryption)

    # -- persistence -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "principal_calls": [[*k, v] for k, v in self.principal_calls.items()],
            "cross_account": [[*k, v] for k, v in self.cross_account.items()],
            "policy_changes": [[*k, v] for k, v in self.policy_changes.items()],
            "encryption_changes": [[*k, v] for k, v in self.encryption_changes.items()],
            "named": [[*k, sorted(v)] for k, v in self.named.items()],
            "callers": sorted(self.callers),
        }

    def restore(self, snap: dict[str, Any]) -> None:
        def rows(name: str) -> Iterator[tuple[tuple[Any, ...], Any]]:
            for row in snap.get(name, ()):
                yield tuple(row[:-1]), row[-1]

        self.principal_cells = {k: [v] for k, v in rows("principal_calls")}
        self.cross_cells = {k: [v] for k, v in rows("cross_account")}
        self.policy_changes = dict(rows("policy_changes"))  # type: ignore[arg-type]
        self.encryption_changes = dict(rows("encryption_changes"))  # type: ignore[arg-type]
        self.named = {k: set(v) for k, v in rows("named")}  # type: ignore[misc]
        self.callers = set(snap.get("callers", ()))
