"""A minimal OTLP/gRPC LogsService that only counts what it receives (run as its own process).

python bench/otlp_sink.py   → prints "port N"; then one JSON line of counts per line read on stdin; exits on EOF.
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

counts = {"records": 0, "requests": 0, "bytes": 0}
lock = threading.Lock()


def export(request: ExportLogsServiceRequest, context: Any) -> bytes:
    n = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
    with lock:
        counts["records"] += n
        counts["requests"] += 1
        counts["bytes"] += request.ByteSize()
    return b""  # an empty ExportLogsServiceResponse: everything accepted


def main() -> int:
    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.logs.v1.LogsService",
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                export,
                request_deserializer=ExportLogsServiceRequest.FromString,
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
