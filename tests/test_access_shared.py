"""Several replicas name the same principals: the access map's admission decided in Redis (a real
redis-server), and each replica on its own while Redis is away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_scaleout import RedisServer

from exporter.model import NO_REF, Call, Labels
from exporter.shared import SharedState
from exporter.sinks.metrics import Aggregate

ACCT = "111122223333"
LABELS = Labels(ACCT, "us-east-1", "orders", "SendMessage", "Data")


def calls(*users: str) -> list[Call]:
    arns = [f"arn:aws:iam::{ACCT}:user/{u}" for u in users]
    return [Call(LABELS, None, 0, 1.8e9, a, a, NO_REF) for a in arns]


def named(agg: Aggregate) -> set[str]:
    return {k[3].rsplit("/", 1)[-1] for k in agg.access.principal_calls} - {"(other)"}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    r = RedisServer(tmp_path / "redis").start()
    yield r
    r.stop()


def replica(url: str) -> tuple[Aggregate, SharedState]:
    shared = SharedState(url)
    agg = Aggregate(max_principal_series=3)
    agg.access.admit = shared.admit_principal
    return agg, shared


def test_replicas_name_the_same_principals(redis_server: RedisServer) -> None:
    a, sa = replica(redis_server.url)
    b, sb = replica(redis_server.url)
    assert sa.up and sb.up
    a.add_calls(calls("u0", "u1", "u2"), 1.8e9, "t")
    # replica b sees other principals first: the queue's series are already taken by a's
    b.add_calls(calls("u3", "u4", "u5", "u0", "u2"), 1.8e9, "t")
    assert named(a) == {"u0", "u1", "u2"}
    assert named(b) == {"u0", "u2"}
    other = sum(v for k, v in b.access.principal_calls.items() if k[3] == "(other)")
    assert other == 3 and sum(b.access.principal_calls.values()) == 5


def test_without_redis_a_replica_decides_alone(redis_server: RedisServer) -> None:
    a, sa = replica(redis_server.url)
    a.add_calls(calls("u0"), 1.8e9, "t")
    redis_server.stop()
    a.add_calls(calls("u7", "u8", "u9"), 1.8e9, "t")  # its own cap still holds
    assert named(a) == {"u0", "u7", "u8"}
    assert not sa.up
