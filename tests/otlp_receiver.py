"""A real OTLP/gRPC logs receiver for the tests: grpcio server + opentelemetry-proto LogsService servicer,
on 127.0.0.1. Keeps every request it acknowledged (decoded with the official proto classes)."""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord


class _Servicer(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, owner: Receiver) -> None:
        self.owner = owner

    def Export(self, request: Any, context: Any) -> Any:
        self.owner._add(request)
        return logs_service_pb2.ExportLogsServiceResponse()


class Receiver:
    def __init__(self, port: int) -> None:
        self.port = port
        self.lock = threading.Lock()
        self.requests: list[Any] = []
        self.count = 0
        self.server: grpc.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.max_receive_message_length", 64 << 20)]
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Servicer(self), server)
        bound = server.add_insecure_port(f"127.0.0.1:{self.port}")
        assert bound == self.port, f"could not bind 127.0.0.1:{self.port}"
        server.start()
        self.server = server
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=None).wait(5)
            self.server = None

    def _add(self, request: Any) -> None:
        n = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
        with self.lock:
            self.requests.append(request)
            self.count += n

    def records(self) -> list[tuple[dict[str, Any], LogRecord]]:
        """(resource attributes, log record) for everything received."""
        with self.lock:
            reqs = list(self.requests)
        out = []
        for req in reqs:
            for rl in req.resource_logs:
                res = {kv.key: to_python(kv.value) for kv in rl.resource.attributes}
                for sl in rl.scope_logs:
                    out.extend((res, lr) for lr in sl.log_records)
        return out


def to_python(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: to_python(kv.value) for kv in v.kvlist_value.values}
    if kind == "array_value":
        return [to_python(x) for x in v.array_value.values]
    return getattr(v, kind)


def attributes(lr: LogRecord) -> dict[str, Any]:
    return {kv.key: to_python(kv.value) for kv in lr.attributes}
