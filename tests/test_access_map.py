"""The access map's caps and counts (unit level; the end-to-end check against ground truth is in test_access_e2e)."""

from __future__ import annotations

import random

from exporter.sinks.metrics.access_map import OTHER, AccessMap

Q = ("111122223333", "eu-west-1", "orders")


def test_cap_of_three_on_forty_principals_sums_to_the_calls() -> None:
    m = AccessMap(max_series=3)
    rng = random.Random(4)
    calls = 0
    for i in range(2000):
        p = f"arn:aws:iam::111122223333:role/r{rng.randrange(40)}"
        m.add(Q, "SendMessage", "AccessDenied" if i % 7 == 0 else None, p, "111122223333")
        calls += 1
    principals = {k[3] for k in m.principal_calls}
    assert len(principals - {OTHER}) == 3 and OTHER in principals
    assert sum(m.principal_calls.values()) == calls
    assert sum(v for k, v in m.principal_calls.items() if k[4] == "error") == len(range(0, 2000, 7))


def test_named_principals_survive_a_restart() -> None:
    m = AccessMap(max_series=2)
    for p in ("a", "b", "c"):
        m.add(Q, "SendMessage", None, p, None)
    again = AccessMap(max_series=2)
    again.restore(m.snapshot())
    again.add(Q, "SendMessage", None, "c", None)
    again.add(Q, "SendMessage", None, "b", None)
    assert again.principal_calls[(*Q, OTHER, "success")] == 2  # c before and after the restart
    assert again.principal_calls[(*Q, "b", "success")] == 2


def test_zero_switches_the_access_map_off_but_not_the_security_series() -> None:
    m = AccessMap(max_series=0)
    m.add(Q, "SetQueueAttributes", None, "a", "444455556666", exposure="public", encryption="none")
    assert m.principal_calls == {}
    assert m.cross_account == {(*Q, "444455556666", "SetQueueAttributes"): 1}
    assert m.policy_changes == {(*Q, "public"): 1}
    assert m.encryption_changes == {(*Q, "none"): 1}


def test_failed_changes_do_not_count_and_caller_accounts_are_capped() -> None:
    m = AccessMap(max_caller_accounts=2)
    m.add(Q, "SetQueueAttributes", "AccessDenied", "a", Q[0], exposure="public")
    assert m.policy_changes == {}
    for acct in ("1", "2", "3", "1"):
        m.add(Q, "SendMessage", None, "p", acct)
    assert {k[3]: v for k, v in m.cross_account.items()} == {"1": 2, "2": 1, OTHER: 1}


def test_admission_can_be_decided_elsewhere() -> None:
    asked: list[str] = []

    def admit(qkey: tuple[str, str, str], principal: str, cap: int) -> bool:
        asked.append(principal)
        return principal != "b"

    m = AccessMap(max_series=5, admit=admit)
    for p in ("a", "b", "a", "c"):
        m.add(Q, "SendMessage", None, p, None)
    assert asked == ["a", "b", "c"]
    assert {k[3]: v for k, v in m.principal_calls.items()} == {"a": 2, OTHER: 1, "c": 1}
