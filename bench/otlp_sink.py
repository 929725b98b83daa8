"""A minimal OTLP/gRPC LogsService that only counts what it receives (run as its own process).

python bench/otlp_sink.py [--decode-all]   → prints "port N"; then one JSON line of counts per line read
on stdin; exits on EOF.

It counts log records by walking the protobuf framing (ExportLogsServiceRequest.resource_logs →
ScopeLogs.scope_logs → ScopeLogs.log_records) without building the messages, and fully decodes one request
in 16 (and every one with --decode-all) to check that count. A full decode of every request keeps the
receiver's core busy allocating ~10× the request bytes, and on a VM whose two cores share caches and memory
bandwidth that slows the process being measured on the other core (docs/performance.md has the figures).
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from exporter.sinks.logs.wire import fields

counts = {"records": 0, "requests": 0, "bytes": 0, "decoded": 0, "mismatches": 0}
lock = threading.Lock()
DECODE_EVERY = 1 if "--decode-all" in sys.argv else 16


def count_records(body: bytes) -> int:
    """ExportLogsServiceRequest.resource_logs → ScopeLogs.scope_logs → ScopeLogs.log_records, counted."""
    n = 0
    for f1, rl in fields(memoryview(body)):
        if f1 == 1 and isinstance(rl, memoryview):  # resource_logs
            for f2, sl in fields(rl):
                if f2 == 2 and isinstance(sl, memoryview):  # scope_logs
                    n += sum(1 for f3, _ in fields(sl) if f3 == 2)  # log_records
    return n


def export(body: bytes, context: Any) -> bytes:
    n = count_records(body)
    with lock:
        counts["requests"] += 1
        decode = counts["requests"] % DECODE_EVERY == 1 % DECODE_EVERY
    if decode:
        request = ExportLogsServiceRequest.FromString(body)
        full = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
        with lock:
            counts["decoded"] += 1
            counts["mismatches"] += full != n
    with lock:
        counts["records"] += n
        counts["bytes"] += len(body)
    return b""  # an empty ExportLogsServiceResponse: everything accepted


def main() -> int:
    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.logs.v1.LogsService",
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                export,
                request_deserializer=None,  # the bytes as received
                response_serializer=lambda b: b,
            )
        },
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.max_receive_message_length", 64 << 20)]
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"port {port}", flush=True)
    for _line in sys.stdin:
        with lock:
            print(json.dumps(counts), flush=True)
    server.stop(grace=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
