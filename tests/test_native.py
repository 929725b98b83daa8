"""The C body encoder (exporter._native) must write exactly what the Python encoder writes, for every
record and redaction setting; where it cannot, it must refuse (ValueError) so the Python one decides."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from util import generate

from exporter import access, config
from exporter.access import POLICY_EVENTS
from exporter.decode.delivery import extract
from exporter.decode.reader import read_delivery
from exporter.decode.record import SqsEvent
from exporter.selfmetrics import SelfMetrics
from exporter.sinks import logs

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = Path(__file__).parents[1] / "exporter" / "sample"

SLOW = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
native_only = pytest.mark.skipif(logs.LogEncoder is None, reason="the C accelerator is not built")


class NullTransport:
    """Unit tests of one function: nothing is sent."""

    def send(self, body: bytes, timeout: float) -> tuple[bool, bool, int, str]:
        return True, False, 0, ""

    def close(self) -> None:
        pass


def make_sink_cfg(**redact: Any) -> config.LogsConfig:
    return config.LogsConfig(enabled=True, endpoint="http://127.0.0.1:9", redact=config.LogsRedactConfig(**redact))


def make_sink(**redact: Any) -> logs.LogSink:
    return logs.LogSink(make_sink_cfg(**redact), SelfMetrics(), transport=NullTransport())


@pytest.fixture(scope="module")
def sinks() -> Iterator[list[logs.LogSink]]:
    made = [
        make_sink(),
        make_sink(source_ip="drop", user_agent="hash", access_key_id="drop", hash_key="k"),
        make_sink(
            source_ip="hash", user_agent="drop", access_key_id="keep", parameters={"entries": "hash", "Id": "drop"}
        ),
        make_sink(parameters={"MessageBody": "hash", "messageBody": "drop", "receiptHandle": "keep"}),
    ]
    yield made
    for s in made:
        s.shutdown(1.0)


def both(sink: logs.LogSink, raw: bytes) -> tuple[Any, Any]:
    """(C result or the ValueError, Python result or the exception)."""
    assert sink.encoding.native is not None
    try:
        fast: Any = sink.encoding.native(raw)
    except ValueError as exc:
        fast = exc
    saved, sink.encoding.native = sink.encoding.native, None
    try:
        slow: Any = sink.encoding.fields(raw)
    except Exception as exc:
        slow = exc
    finally:
        sink.encoding.native = saved
    return fast, slow


def both_records(sink: logs.LogSink, raw: bytes, ev: Any) -> tuple[Any, Any]:
    """encode() with the C record encoder, and with the Python one."""
    try:
        fast: Any = sink.encoding.encode(raw, ev, 1_800_000_000.5, False)
    except Exception as exc:
        fast = exc
    saved, sink.encoding.native_record = sink.encoding.native_record, None
    try:
        slow: Any = sink.encoding.encode(raw, ev, 1_800_000_000.5, False)
    except Exception as exc:
        slow = exc
    finally:
        sink.encoding.native_record = saved
    return fast, slow


def check(sinks: list[logs.LogSink], raw: bytes, must_handle: bool = False) -> None:
    for sink in sinks:
        fast, slow = both(sink, raw)
        if isinstance(fast, ValueError):
            assert not must_handle, f"the C encoder refused a record it should handle: {fast}"
            continue
        assert not isinstance(slow, Exception), f"C accepted what Python refuses ({slow!r}): {raw[:200]!r}"
        assert fast == slow, raw[:300]
        # and it is a valid KeyValueList
        kv = common_pb2.KeyValueList()
        kv.ParseFromString(fast[0])
        rec = logs_pb2.LogRecord()
        rec.ParseFromString(fast[1])
        assert len(rec.attributes) <= 6


def records_in(data: bytes) -> list[bytes]:
    d = read_delivery(data)
    return [r if type(r) is bytes else bytes(r) for r in d.records]


@native_only
def test_fixtures_sample_and_generated(sinks: list[logs.LogSink], tmp_path: Path) -> None:
    files = [p for root in (FIXTURES, SAMPLE) for p in sorted(root.rglob("*")) if p.is_file()]
    generate(tmp_path, files=4, records=300, seed=11)
    files += sorted(tmp_path.rglob("*.json.gz"))
    n = 0
    for p in files:
        data = p.read_bytes()
        for raw in records_in(data):
            if raw[:1] == b"{" and b"sqs.amazonaws.com" in raw:
                check(sinks, raw, must_handle=True)
                n += 1
        for raw, ev in extract(data)[1]:  # whole log records: C and Python write the same bytes
            for sink in sinks:
                fast, slow = both_records(sink, raw, ev)
                assert type(fast) is bytes and fast == slow
                scope = logs_pb2.ScopeLogs()
                scope.ParseFromString(fast)  # one ScopeLogs.log_records element
                assert scope.log_records[0].event_name == "aws.cloudtrail.sqs." + ev.event_name
    assert n > 1000


@native_only
def test_redaction_applies(sinks: list[logs.LogSink]) -> None:
    rec = {
        "eventID": "e1",
        "requestID": "r1",
        "sourceIPAddress": "10.0.0.1",
        "userAgent": "aws-cli",
        "readOnly": False,
        "userIdentity": {"type": "IAMUser", "accessKeyId": "AKIA1", "sessionContext": {"accessKeyId": "nested"}},
        "requestParameters": {"entries": [{"Id": "1", "receiptHandle": "rh"}], "receiptHandle": "top"},
        "responseElements": None,
    }
    raw = json.dumps(rec).encode()
    fast = sinks[2].encoding.native(raw)  # type: ignore[misc]
    kv = common_pb2.KeyValueList()
    kv.ParseFromString(fast[0])
    top = {x.key: x.value for x in kv.values}
    assert top["sourceIPAddress"].string_value.startswith("sha256:")
    assert "userAgent" not in top
    params = {x.key: x.value for x in top["requestParameters"].kvlist_value.values}
    assert params["entries"].string_value.startswith("sha256:")  # hashed whole, not walked into
    attrs = logs_pb2.LogRecord()
    attrs.ParseFromString(fast[1])
    got = {a.key: a.value for a in attrs.attributes}
    assert list(got) == ["client.address", "aws.cloudtrail.read_only", "aws.cloudtrail.user_identity.type",
                         "aws.request_id", "aws.cloudtrail.event_id"]  # fmt: skip
    assert got["client.address"] == top["sourceIPAddress"]
    assert got["aws.cloudtrail.read_only"].HasField("bool_value") and not got["aws.cloudtrail.read_only"].bool_value
    assert (got["aws.request_id"].string_value, got["aws.cloudtrail.event_id"].string_value) == ("r1", "e1")
    assert got["aws.cloudtrail.user_identity.type"].string_value == "IAMUser"
    check(sinks, raw, must_handle=True)


json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 70), max_value=1 << 70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_value = st.recursive(
    json_scalar,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=12,
)
special = st.sampled_from(
    [
        "eventID",
        "requestID",
        "sourceIPAddress",
        "userAgent",
        "readOnly",
        "userIdentity",
        "requestParameters",
        "responseElements",
        "type",
        "accessKeyId",
        "entries",
        "Id",
        "MessageBody",
        "messageBody",
        "receiptHandle",
    ]
)
nested = st.recursive(
    json_scalar,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(special | st.text(max_size=4), kids, max_size=4),
    max_leaves=10,
)
record = st.dictionaries(special | st.text(max_size=6), nested | json_value, max_size=8)


@native_only
@settings(max_examples=400, deadline=None, suppress_health_check=SLOW)
@given(record, st.sampled_from([0, 1, 2]))
def test_random_records(sinks: list[logs.LogSink], rec: dict[str, Any], indent: int) -> None:
    raw = json.dumps(rec, indent=indent or None, ensure_ascii=bool(indent % 2)).encode()
    check(sinks, raw, must_handle=True)
    check(sinks, msgspec.json.encode(rec), must_handle=True)
    for sink in sinks:
        fast, slow = both_records(sink, raw, EVENT)
        assert fast == slow


EVENT = SqsEvent(
    account_id="111122223333",
    region="eu-west-1",
    queue="q",
    event_name="SendMessageBatch",
    category="Data",
    error_code="AccessDenied",
    principal_role="arn:aws:iam::111122223333:role/r",
    principal_arn="arn:aws:sts::111122223333:assumed-role/r/s",
    event_time=1_800_000_000.25,
    batch_entries=3,
    queue_url="https://sqs.eu-west-1.amazonaws.com/111122223333/q",
    queue_arn="arn:aws:sqs:eu-west-1:111122223333:q",
)


@native_only
@settings(max_examples=400, deadline=None, suppress_health_check=SLOW)
@given(st.binary(max_size=64) | st.text(max_size=40).map(str.encode))
def test_garbage_is_refused_or_equal(sinks: list[logs.LogSink], raw: bytes) -> None:
    check(sinks, b'{"a":' + raw + b"}")
    check(sinks, raw)


@native_only
@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": "\\ud800"}',  # lone surrogate
        b'{"a": 1e400}',  # float overflow
        b'{"a": "x\x01"}',  # control character
        b'{"a": "\xff"}',  # invalid UTF-8
        b'{"a": "\xed\xa0\x80"}',  # an encoded surrogate
        b"[1]",
        b'{"a": 1} x',
        b'{"a": [' * 200 + b"]" * 200 + b"}",  # deeper than the C encoder goes
        b'{"a": 01}',
        b'{"a": -}',
        b'{"a": 1, "b": 2, "a": 3}',  # duplicate keys: Python keeps the last value at the first place
        b'{"x": {"k": 1, "k": 1}}',
        b"{" + b",".join(b'"k%d": 0' % i for i in range(300)) + b"}",  # more keys than it tracks
        b'{"a": tru}',
    ],
)
def test_refuses_what_it_does_not_handle(sinks: list[logs.LogSink], raw: bytes) -> None:
    with pytest.raises(ValueError):
        sinks[0].encoding.native(raw)  # type: ignore[misc]
    check(sinks, raw)


@native_only
def test_numbers_and_escapes(sinks: list[logs.LogSink]) -> None:
    raw = (
        b'{"i": 9223372036854775807, "j": -9223372036854775808, "big": 9223372036854775808, '
        b'"neg": -99999999999999999999999, "z": -0, "f": -0.0, "e": 1E2, "tiny": 1.5e-400, '
        b'"s": "\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00", "k\\u0041": null, "long": "' + b"x" * 20000 + b'"}'
    )
    check(sinks, raw, must_handle=True)


@native_only
@pytest.mark.parametrize("key", [None, "k", "x" * 64, "y" * 65, "ключ"])
def test_hashing_in_c_matches_python_at_every_length(key: str | None) -> None:
    """Strings are hashed in C (libcrypto SHA-256 / HMAC): every padding boundary, UTF-8, empty."""
    sink = make_sink(source_ip="hash", user_agent="hash", hash_key=key)
    try:
        for n in [*range(0, 140), 200, 1000]:
            value = ("aé😀" * n)[:n]
            raw = json.dumps({"sourceIPAddress": value, "userAgent": "u" * n, "requestParameters": {"x": 1}}).encode()
            fast, slow = both(sink, raw)
            assert fast == slow, (key, n)
    finally:
        sink.shutdown(1.0)


@native_only
def test_short_keys_are_told_apart(sinks: list[logs.LogSink]) -> None:
    """The duplicate-key check must not mistake different short keys for one (found by hypothesis)."""
    check(sinks, b'{"eventID": null, "": null, "\\u0001": null}', must_handle=True)
    keys = ["", "a", "b", "ab", "ba", "\x01", "\x00", "abcdefg", "abcdefgh", "abcdefghi", "bcdefghi"]
    check(sinks, json.dumps(dict.fromkeys(keys, 1)).encode(), must_handle=True)
    # keys of 3 to 7 bytes that differ only inside (the hash reads them with overlapping loads)
    keys = ["abc", "axc", "abcd", "abxd", "abcde", "abxde", "abcdx", "abcdef", "abcdxf", "abcdefg", "abcdexg"]
    check(sinks, json.dumps(dict.fromkeys(keys, 1)).encode(), must_handle=True)


class Collecting:
    """Keeps every request the sink sends (unit test of emit_calls against emit)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def send(self, body: bytes, timeout: float) -> tuple[bool, bool, int, str]:
        self.bodies.append(body)
        return True, False, 0, ""

    def close(self) -> None:
        pass


def sent_records(redact: dict[str, Any], feed: Any, **cfg: Any) -> list[bytes]:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    t = Collecting()
    c = config.LogsConfig(enabled=True, endpoint="http://127.0.0.1:9", redact=config.LogsRedactConfig(**redact), **cfg)
    sink = logs.LogSink(c, SelfMetrics(), transport=t, rng=iter([0.1, 0.9] * 100_000).__next__)
    feed(sink)
    sink.shutdown(5.0)
    out = []
    for body in t.bodies:
        req = ExportLogsServiceRequest.FromString(body)
        records = [r.SerializeToString() for rl in req.resource_logs for sl in rl.scope_logs for r in sl.log_records]
        # no request past the batch limits, but for a single record larger than a batch
        assert len(records) <= c.batch_size
        assert len(body) <= c.batch_max_bytes or len(records) == 1
        out += records
    return out


@native_only
@pytest.mark.parametrize(
    "redact,cfg",
    [
        ({}, {}),
        ({"source_ip": "hash", "hash_key": "k", "parameters": {"receiptHandle": "hash"}}, {}),
        ({}, {"only_errors": True}),
        ({}, {"sample_ratio": 0.5}),
        ({}, {"exclude_events": ["ReceiveMessage"]}),
        ({}, {"batch_size": 7}),
        ({}, {"batch_max_bytes": 1 << 14}),
    ],
    ids=["default", "hmac", "only-errors", "sampled", "exclude", "batch-7", "batch-16k"],
)
def test_emit_calls_sends_what_emit_sends(tmp_path: Path, redact: dict[str, Any], cfg: dict[str, Any]) -> None:
    """The one-loop path for an object's calls writes the same records, in the same order, as emit()
    per event; including a record the C encoder declines (a duplicate key) and calls the metrics dropped."""
    from exporter.decode.delivery import scanned
    from exporter.decode.record import call_event

    generate(tmp_path / "t", files=6, records=300, error_rate=0.2)
    blobs = [p.read_bytes() for p in sorted((tmp_path / "t").rglob("*_CloudTrail_*.json.gz"))]
    assert blobs
    plain = json.loads(gzip.decompress(blobs[0]))["Records"]
    sqs = [r for r in plain if r["eventSource"] == "sqs.amazonaws.com"][:20]
    text = json.dumps({"Records": sqs})
    # a duplicate key where the scanner does not read (the C encoder declines the record; Python decides) ...
    inner = text.replace('"responseElements": {', '"responseElements": {"x": 1, "x": 2, ', 1)
    # ... and one it reads (the scanner declines the file; the general path decides)
    top = text.replace('"awsRegion":', '"eventName": "SendMessage", "awsRegion":', 1)
    assert inner != text and top != text
    objects = []
    for data in [*blobs, inner.encode(), top.encode()]:
        fast = scanned(data, True)
        if fast is None:
            _, events = extract(data, keep_raw=True)
            objects.append(([], [], [], events))
            continue
        _, calls, raws = fast
        kept = [i % 7 != 3 for i in range(len(calls))]
        objects.append((calls, raws, kept, []))
    assert any(o[3] for o in objects) and any(o[0] for o in objects)

    def by_calls(sink: logs.LogSink) -> None:
        for calls, raws, kept, events in objects:
            sink.emit_calls(calls, raws, kept, 1.8e9)
            for raw, ev in events:
                sink.emit(raw, ev, 1.8e9)

    def by_events(sink: logs.LogSink) -> None:
        for calls, raws, kept, events in objects:
            for call, raw, keep in zip(calls, raws, kept, strict=True):
                if keep:
                    sink.emit(raw, call_event(call), 1.8e9)
            for raw, ev in events:
                sink.emit(raw, ev, 1.8e9)

    a, b = sent_records(redact, by_calls, **cfg), sent_records(redact, by_events, **cfg)
    assert a and a == b


def split(chunk: bytes, n: int) -> list[bytes]:
    """A chunk of concatenated ScopeLogs.log_records elements → the elements, tag and length included."""
    from exporter.sinks.logs.wire import read_varint

    out, i = [], 0
    while i < len(chunk):
        assert chunk[i] == 0x12
        size, j = read_varint(chunk, i + 1)
        out.append(chunk[i : j + size])
        i = j + size
    assert len(out) == n and i == len(chunk)
    return out


@native_only
def test_encode_calls_stops_where_python_must_decide(tmp_path: Path) -> None:
    """LogEncoder.encode (the C loop of emit_calls) stops before a call whose attributes are not cached yet,
    and when the queue's room (records or bytes) is used up; what it wrote is what _emit_call writes."""
    from exporter.decode.delivery import scanned

    generate(tmp_path / "t", files=2, records=200)
    data = sorted((tmp_path / "t").rglob("*_CloudTrail_*.json.gz"))[0].read_bytes()
    fast = scanned(data, True)
    assert fast is not None
    _, calls, raws = fast
    # calls that may change a queue's exposure or encryption are always Python's (test_policy_calls_are_pythons)
    pairs = [(c, r) for c, r in zip(calls, raws, strict=True) if c.labels.event_name not in POLICY_EVENTS]
    calls, raws = [c for c, _ in pairs], [r for _, r in pairs]
    kept = [True] * len(calls)
    sink = make_sink()
    try:
        huge = 1 << 40
        encoders: dict[tuple[int, int], Any] = {}

        def enc(calls: Any, raws: Any, kept: Any, start: int, o_ns: int, *limits: int) -> Any:
            """encode() of an encoder with these batch limits (rooms, batch, fill), sharing the sink's caches."""
            room_records, room_bytes, batch_records, batch_bytes, open_records, open_bytes = limits
            e = encoders.get((batch_records, batch_bytes))
            if e is None:
                cfg = make_sink_cfg()
                e = logs.LogEncoder(logs.encoder_settings(cfg, sink.redact, batch_records, batch_bytes))
                encoders[(batch_records, batch_bytes)] = e
            for mine, theirs in ((e.kinds, sink.encoding._kind_cache), (e.batch_sizes, sink.encoding._batch_attrs)):
                mine.update(theirs)
            e.principals.update(sink.encoding._principal_cache)
            return e.encode(calls, raws, kept, start, o_ns, (room_records, room_bytes, open_records, open_bytes))

        def run(
            start: int, rooms: tuple[int, int], batch: tuple[int, int] = (huge, huge), fill: tuple[int, int] = (0, 0)
        ) -> tuple[list[bytes], int, int]:
            """→ (the records written, where it stopped, the bytes), checking the chunks' framing."""
            chunks, stop, size, *_ = enc(calls, raws, kept, start, 7, *rooms, *batch, *fill)
            assert size == sum(len(c) for c, _ in chunks)
            return [r for c, n in chunks for r in split(c, n)], stop, size

        big = (huge, huge)
        done, stop, size = run(0, big)
        assert (done, stop, size) == ([], 0, 0)  # nothing cached yet: the first call is Python's
        # Python handles each call where C stops (filling the caches), as emit_calls does
        want: list[bytes] = []
        i = 0
        while i < len(calls):
            done, i, size = run(i, big)
            want += done
            if i < len(calls):
                before = len(sink.exports.queue)
                sink._emit_call(calls[i], raws[i], 7, 7e-9)
                assert len(sink.exports.queue) == before + 1
                f, n = sink.exports.queue.pop()
                assert n == 1
                want.append(f)
                i += 1
        assert len(want) == len(calls)
        # warm caches: one run does it all, byte for byte
        done, stop, _ = run(0, big)
        assert stop == len(calls) and done == want
        # room: 5 records, or bytes for about 3
        done, stop, _ = run(0, (5, huge))
        assert stop == 5 and done == want[:5]
        done, stop, _ = run(0, (huge, len(want[0]) + len(want[1]) + 1))
        assert done == want[:3] and stop == 3
        kept[2] = False
        done, stop, _ = run(0, (3, huge))
        assert done == [want[0], want[1], want[3]] and stop == 4
        kept[2] = True
        # chunks end where a batch of 4 records, or of the bytes of 3, ends; the open batch carries over
        chunks, stop, _, *fill = enc(calls, raws, kept, 0, 7, *big, 4, huge, 1, 10)
        assert [n for _, n in chunks] == [3] + [4] * ((len(calls) - 3) // 4) + [(len(calls) - 3) % 4] * bool(
            (len(calls) - 3) % 4
        )
        assert fill == [chunks[-1][1], len(chunks[-1][0])] and stop == len(calls)
        cap = sum(map(len, want[:3]))
        chunks, *_ = enc(calls, raws, kept, 0, 7, *big, huge, cap, 0, 0)
        assert all(len(c) <= cap for c, _ in chunks) and b"".join(c for c, _ in chunks) == b"".join(want)
        assert chunks[0][1] == 3 or len(want[0]) + len(want[1]) + len(want[2]) > cap
        # one record larger than a batch goes alone
        chunks, *_ = enc(calls, raws, kept, 0, 7, *big, huge, 10, 0, 0)
        assert [n for _, n in chunks] == [1] * len(calls)
    finally:
        sink.shutdown(1.0)


@native_only
def test_policy_calls_are_written_by_encode_as_python_writes_them(tmp_path: Path) -> None:
    """A call that may change a queue's exposure or encryption carries attributes read from its request
    parameters: LogEncoder.encode writes it (asking its kind's function for them) byte for byte as
    _emit_call does, once the caches are warm."""
    from exporter.decode.delivery import scanned

    generate(tmp_path / "t", files=4, records=300)
    sink = make_sink()
    try:
        seen = set()
        written = 0
        for path in sorted((tmp_path / "t").rglob("*_CloudTrail_*.json.gz")):
            fast = scanned(path.read_bytes(), True)
            assert fast is not None
            _, calls, raws = fast
            for i, (call, raw) in enumerate(zip(calls, raws, strict=True)):
                sink._emit_call(call, raw, 7, 7e-9)  # the Python path, which fills the caches
                f, _n = sink.exports.queue.pop()
                chunks, stop, *_ = sink.encoding.encoder.encode(
                    calls, raws, [True] * len(calls), i, 7, (1, 1 << 40, 0, 0)
                )
                assert stop == i + 1 and chunks == [(f, 1)], call
                written += call.labels.event_name in POLICY_EVENTS
                if call.labels.event_name in POLICY_EVENTS and call.error is None:
                    params = json.loads(raw).get("requestParameters")
                    exposure = access.change_exposure(call.labels.event_name, params, call.labels.account_id)
                    encryption = access.change_encryption(call.labels.event_name, params)
                    for key, value in (("exposure", exposure), ("encryption", encryption)):
                        attr = f"aws.cloudtrail.sqs.{key}".encode()
                        assert (attr in f) == (value is not None)
                        if value is not None:
                            assert value.encode() in f
                            seen.add(key)
        assert written and seen == {"exposure", "encryption"}
    finally:
        sink.shutdown(1.0)


def change_kind_call(sink: logs.LogSink, tmp_path: Path) -> tuple[list[Any], list[Any], int, Any]:
    """Calls and raws of a generated file, the position of a call whose kind carries a change function (not
    the last call), and its kinds key, with the caches warm up to it."""
    from exporter.decode.delivery import scanned

    generate(tmp_path / "t", files=2, records=300)
    for path in sorted((tmp_path / "t").rglob("*_CloudTrail_*.json.gz")):
        fast = scanned(path.read_bytes(), True)
        assert fast is not None
        calls, raws = list(fast[1]), list(fast[2])
        for i, (call, raw) in enumerate(zip(calls, raws, strict=True)):
            sink._emit_call(call, raw, 7, 7e-9)
            sink.exports.queue.pop()
            key = (call.labels, call.error, call.queue)
            kind = sink.encoding.encoder.kinds.get(key)
            if kind is not None and len(kind) == 5 and i + 1 < len(calls):
                return calls, raws, i, key
    pytest.fail("no call of a kind with a change function")


@native_only
@pytest.mark.parametrize("answer", ["raises", "not bytes"])
def test_a_failing_change_function_leaves_the_call_to_python(tmp_path: Path, answer: str) -> None:
    sink = make_sink()
    try:
        calls, raws, i, key = change_kind_call(sink, tmp_path)
        kinds = sink.encoding.encoder.kinds

        def bad(raw: Any) -> Any:
            if answer == "raises":
                raise RuntimeError("boom")
            return "text"

        kinds[key] = (*kinds[key][:4], bad)
        chunks, stop, *_ = sink.encoding.encoder.encode(calls, raws, [True] * len(calls), i, 7, (1, 1 << 40, 0, 0))
        assert (chunks, stop) == ([], i)
    finally:
        sink.shutdown(1.0)


@native_only
@pytest.mark.parametrize("open_bytes", [0, 1 << 20, (3 << 20) - 50_000])
def test_chunks_hold_about_what_they_count(tmp_path: Path, open_bytes: int) -> None:
    """The queue's byte budget counts len(chunk): a chunk must not hold much more memory than that (it is
    allocated for the rest of its batch, then trimmed or copied to its size when sealed)."""
    import sys

    from exporter.decode.delivery import scanned

    generate(tmp_path / "t", files=3, records=2000)
    sink = make_sink()
    try:
        seen = 0
        for path in sorted((tmp_path / "t").rglob("*_CloudTrail_*.json.gz")):
            fast = scanned(path.read_bytes(), True)
            assert fast is not None
            _, calls, raws = fast
            for call, raw in zip(calls, raws, strict=True):  # warm the caches
                sink._emit_call(call, raw, 7, 7e-9)
            sink.exports.queue.clear()
            for room in (1 << 40, 300_000):
                chunks, *_ = sink.encoding.encoder.encode(
                    calls, raws, [True] * len(calls), 0, 7, (1 << 30, room, 1 if open_bytes else 0, open_bytes)
                )
                assert chunks
                for chunk, _n in chunks:
                    held = sys.getsizeof(chunk) - sys.getsizeof(bytearray())
                    assert held <= len(chunk) + len(chunk) // 7 + 64, (len(chunk), held)  # at most 1/8 of it unused
                    seen += 1
        assert seen
    finally:
        sink.shutdown(1.0)


@native_only
def test_a_change_function_that_empties_the_lists_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """The kind's function runs Python in the middle of encode(): if it changes the lists encode() reads,
    encode() raises (it must not read past their end, nor use a call or record they let go of)."""
    sink = make_sink()
    try:
        calls, raws, i, key = change_kind_call(sink, tmp_path)
        kinds = sink.encoding.encoder.kinds
        kept = [True] * len(calls)
        change = kinds[key][4]

        def clear(raw: Any) -> Any:
            out = change(raw)
            for lst in (calls, raws, kept):
                lst.clear()
            return out

        kinds[key] = (*kinds[key][:4], clear)
        with pytest.raises(RuntimeError, match="changed during encode"):
            sink.encoding.encoder.encode(calls, raws, kept, i, 7, (1 << 30, 1 << 40, 0, 0))
    finally:
        sink.shutdown(1.0)
