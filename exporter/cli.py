"""Command line: `run`, `replay`, `check-config`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

import yaml

from . import __version__, config, masking
from .tuning import tune_gc, tune_malloc


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="cloudtrail-sqs-exporter",
        description="Prometheus metrics and OpenTelemetry logs from the Amazon SQS events in AWS CloudTrail.",
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (serves /metrics, /healthz, /readyz)")
    run.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    run.add_argument("--config", "-c", help="YAML config file (default: the embedded sample setup)")
    # the exporter-toolkit spellings, with the older ones kept as aliases
    run.add_argument(
        "--web.listen-address", "--listen", dest="listen", help="address:port to serve on (config: listen)"
    )
    run.add_argument(
        "--web.config.file",
        "--web-config-file",
        dest="web_config_file",
        help="TLS / basic auth web-config, exporter-toolkit format (config: web_config_file)",
    )
    run.add_argument("--web.telemetry-path", dest="telemetry_path", help="path of the metrics (config: telemetry_path)")
    run.add_argument(
        "--health-listen", dest="health_listen", help="plain-HTTP probe listener address:port (config: health_listen)"
    )
    run.add_argument("--state-path", help="SQLite state file (config: state.path)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.add_argument("--shutdown-grace", type=float, default=20.0, help="seconds to finish work on SIGTERM")

    rp = sub.add_parser("replay", help="one pass over files or an S3 prefix; print the metrics")
    rp.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    rp.add_argument("paths", nargs="+", metavar="PATH_OR_S3_URL")
    rp.add_argument("--output", "-o", choices=["prometheus", "json"], default="prometheus")
    rp.add_argument("--config", "-c", help="YAML config file (metrics and logs settings apply)")
    rp.add_argument("--principal-granularity", choices=["role", "arn"])

    cc = sub.add_parser("check-config", help="validate a config file and print the effective configuration")
    cc.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    cc.add_argument("file")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "check-config":
        tune_malloc()
    try:
        if args.command == "check-config":
            settings = config.load(args.file)
            sys.stdout.write(yaml.safe_dump(config.masked(settings), sort_keys=False))
            return 0
        if args.command == "replay":
            settings = config.load(args.config, **{"metrics.principal_granularity": args.principal_granularity})
            _logging("error", config.secrets(settings))  # bad files are reported by replay itself, once each
            from .app import replay

            tune_gc()
            text, _failed = replay(args.paths, settings, args.output)
            sys.stdout.write(text)
            return 0
        settings = config.load(
            args.config,
            listen=args.listen,
            log_level=args.log_level,
            web_config_file=args.web_config_file,
            telemetry_path=args.telemetry_path,
            health_listen=args.health_listen,
            **{"state.path": args.state_path},
        )
    except config.ConfigError as exc:
        print(f"cloudtrail-sqs-exporter: {exc}", file=sys.stderr)
        return 2
    _logging(settings.log_level, config.secrets(settings))
    return _run(settings, args.shutdown_grace)


def _logging(level: str, secrets: set[str]) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    masking.mask_logging(secrets)  # no secret in any line, at any level, from any library


def _run(settings: config.Settings, grace: float) -> int:
    from .app import App
    from .state import StateError

    try:
        app = App(settings)
    except (StateError, config.ConfigError) as exc:  # state file in use / unwritable / corrupt; an OTEL_* value
        print(f"cloudtrail-sqs-exporter: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:  # port in use, bad web config…
        print(
            f"cloudtrail-sqs-exporter: cannot start: {masking.mask_text(str(exc), config.secrets(settings))}",
            file=sys.stderr,
        )
        return 1
    done = threading.Event()
    lost: list[str] = []
    app.store.on_lost = app.pipeline.on_fatal = lambda reason: (lost.append(reason), done.set())

    def _stop(signum: int, _frame: object) -> None:
        logging.getLogger(__name__).info("signal %d: shutting down", signum)
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    tune_gc()
    app.start()
    logging.getLogger(__name__).info(
        "cloudtrail-sqs-exporter %s started (pid %d), %d source(s)", __version__, os.getpid(), len(app.sources)
    )
    done.wait()
    try:
        app.shutdown(grace)
    except StateError as exc:
        lost.append(str(exc))
    if lost:
        print(f"cloudtrail-sqs-exporter: {lost[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
