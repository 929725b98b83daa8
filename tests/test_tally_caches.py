"""The Tally's caches (C and Python alike): access-map cells remembered per (queue, principal), errors-table
keys per (slot, error code), both forgotten on restore, and what is never remembered."""

from __future__ import annotations

from typing import Any

import pytest
import reference

from exporter.model import NO_REF, Call, Labels
from exporter.sinks.metrics import Aggregate
from exporter.sinks.metrics import tally as tallies
from exporter.sinks.metrics.caps import LabelCaps

TALLIES = [pytest.param(tallies.Tally, id="python")]
if tallies.TALLY is not tallies.Tally:
    TALLIES.append(pytest.param(tallies.TALLY, id="c"))

ACCOUNT, OTHER_ACCOUNT = "111122223333", "444455556666"


def call(queue: str, name: str, who: str, error: str | None = None, t: float = 1.79e9) -> Call:
    labels = Labels(ACCOUNT, "eu-west-1", queue, name, "Data")
    return Call(labels, error, 0, t, who, who, NO_REF)


def role(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def make(tally: Any, asked: dict[str, int], **kw: Any) -> Aggregate:
    """An aggregate whose tally counts how often it asks for access cells and error keys."""

    def wrapped(**settings: Any) -> Any:
        for cb in ("access_keys", "error_key"):
            fn = settings[cb]

            def counted(*a: Any, _fn: Any = fn, _cb: str = cb) -> Any:
                asked[_cb] = asked.get(_cb, 0) + 1
                return _fn(*a)

            settings[cb] = counted
        return tally(**settings)

    return Aggregate(tally=wrapped, **kw)


@pytest.mark.parametrize("tally", TALLIES)
def test_access_cells_are_asked_once_per_queue_and_principal(tally: Any) -> None:
    asked: dict[str, int] = {}
    agg = make(tally, asked)
    mine, theirs = role(ACCOUNT, "app"), role(OTHER_ACCOUNT, "partner")
    names = ("SendMessage", "ReceiveMessage", "DeleteMessage")
    calls = [call(q, n, w) for q in ("a", "b") for n in names for w in (mine, theirs)]
    agg.add_calls(calls * 2, 1.8e9, "file")
    assert asked["access_keys"] == 4  # 2 queues × 2 principals, whatever the event names
    want = {(ACCOUNT, "eu-west-1", q, w, "success"): 6 for q in "ab" for w in (mine, theirs)}
    assert agg.access.principal_calls == want
    # the cross-account cell is per event name
    assert agg.access.cross_account == {(ACCOUNT, "eu-west-1", q, OTHER_ACCOUNT, n): 2 for q in "ab" for n in names}


@pytest.mark.parametrize("tally", TALLIES)
def test_long_principal_names_are_not_remembered(tally: Any) -> None:
    asked: dict[str, int] = {}
    agg = make(tally, asked)
    long = role(ACCOUNT, "x" * 300)
    agg.add_calls([call("a", "SendMessage", long)] * 3, 1.8e9, "file")
    assert asked["access_keys"] == 3
    assert agg.access.principal_calls == {(ACCOUNT, "eu-west-1", "a", long, "success"): 3}


@pytest.mark.parametrize("tally", TALLIES)
def test_error_keys_are_asked_once_per_slot_and_code_unless_folded(tally: Any) -> None:
    asked: dict[str, int] = {}
    # room for 2 label sets, then folding
    agg = make(tally, asked, caps=LabelCaps(max_series=2))
    who = role(ACCOUNT, "app")
    calls = [call("a", "SendMessage", who, "Throttling")] * 3 + [call("a", "SendMessage", who, "AccessDenied")] * 2
    agg.add_calls(calls, 1.8e9, "file")
    # the calls key and the Throttling key are admitted; AccessDenied folds, on each call (caps.folded counts it)
    assert asked["error_key"] == 1 + 2
    assert agg.caps.folded == 2
    assert sum(agg.errors.values()) == 5


@pytest.mark.parametrize("tally", TALLIES)
def test_restore_forgets_the_cells_so_counts_land_in_the_restored_map(tally: Any) -> None:
    """After a restore the access map's cells are new objects: the tally must not keep adding to the old."""
    asked: dict[str, int] = {}
    mine, theirs = role(ACCOUNT, "app"), role(OTHER_ACCOUNT, "partner")
    calls = [call("a", "SendMessage", w, e) for w in (mine, theirs) for e in (None, "Throttling")]
    agg, ref = make(tally, asked), Aggregate(tally=tallies.Tally)
    for a in (agg, ref):
        a.add_calls(calls, 1.8e9, "file")
    snap = ref.snapshot()
    agg.restore(snap)
    ref.restore(snap)
    agg.add_calls(calls, 1.8e9, "file")
    reference.add_calls(ref, calls, 1.8e9, "file")
    for table in ("principal_calls", "cross_account"):
        assert getattr(agg.access, table) == getattr(ref.access, table), table
    assert agg.access.principal_calls[(ACCOUNT, "eu-west-1", "a", mine, "error")] == 2
    assert agg.errors == ref.errors


@pytest.mark.parametrize("tally", TALLIES)
def test_slots_are_asked_once_per_labels_and_again_after_restore(tally: Any) -> None:
    """A labels object's slot is remembered (in C also by the object's identity, so that repeated calls
    skip hashing it); a restore replaces the admitted queues, so every slot is asked for again."""
    asked: list[Labels] = []

    def wrapped(**settings: Any) -> Any:
        fn = settings["slot"]

        def counted(labels: Labels) -> Any:
            asked.append(labels)
            return fn(labels)

        settings["slot"] = counted
        return tally(**settings)

    agg = Aggregate(tally=wrapped, max_queues=1)
    calls = [call(q, "SendMessage", role(ACCOUNT, "app")) for q in ("a", "b")]
    equal = [call(q, "SendMessage", role(ACCOUNT, "app")) for q in ("a", "b")]  # equal labels, other objects
    agg.add_calls(calls * 3 + equal, 1.8e9, "file")
    assert asked == [c.labels for c in calls]
    assert set(agg.calls) == {(ACCOUNT, "eu-west-1", q, "SendMessage", "Data") for q in ("a", "(other)")}
    snap = Aggregate(max_queues=1).snapshot()  # nothing admitted: queue "b" first now
    agg.restore(snap)
    agg.add_calls(calls[::-1], 1.8e9, "file")
    assert asked[2:] == [c.labels for c in calls[::-1]]
    assert agg.calls == {
        (ACCOUNT, "eu-west-1", "b", "SendMessage", "Data"): 1,
        (ACCOUNT, "eu-west-1", "(other)", "SendMessage", "Data"): 1,
    }
