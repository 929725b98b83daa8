"""Command line: `run`, `replay`, `check-config`."""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import sys
import threading

from . import __version__, config, logfmt, masking, report
from .report import EXIT_USAGE
from .tuning import tune_gc, tune_malloc

PROG = "cloudtrail-sqs-exporter"
LEVELS = ["debug", "info", "warning", "error"]


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, argparse.SUPPRESS) or "default" in text or action.nargs in ("+", "*", 0):
            return text
        return text + " (default: %(default)s)"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Prometheus metrics and OpenTelemetry logs from the Amazon SQS events in AWS CloudTrail.",
        epilog="Exit codes: 0 success, 1 some inputs failed (what was read is still printed) or run could not "
        "start, 2 usage or configuration error, 3 nothing could be read.",
        formatter_class=_Help,
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (serves /metrics, /healthz, /readyz)", formatter_class=_Help)
    run.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    run.add_argument("--config", "-c", help="YAML config file (default: the embedded sample setup)")
    # the exporter-toolkit spellings, with the older ones kept as aliases
    run.add_argument(
        "--web.listen-address",
        "--listen",
        dest="listen",
        help="address:port to serve on (config: listen; default: 0.0.0.0:10355)",
    )
    run.add_argument(
        "--web.config.file",
        "--web-config-file",
        dest="web_config_file",
        help="TLS / basic auth web-config, exporter-toolkit format (config: web_config_file; default: plain HTTP)",
    )
    run.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        help="path of the metrics (config: telemetry_path; default: /metrics)",
    )
    run.add_argument(
        "--health-listen",
        dest="health_listen",
        help="plain-HTTP probe listener address:port (config: health_listen; default: none)",
    )
    run.add_argument(
        "--state-path", help="SQLite state file (config: state.path; default: ./state/cloudtrail-sqs-exporter.db)"
    )
    run.add_argument(
        "--log-level", choices=LEVELS, help="log level of the process's own lines (config: log_level; default: info)"
    )
    run.add_argument(
        "--log-format",
        choices=logfmt.FORMATS,
        default="text",
        help="text for a person, json for a log shipper (one object per line: time, level, logger, message, fields)",
    )
    run.add_argument("--shutdown-grace", type=float, default=20.0, help="seconds to finish work on SIGTERM")

    rp = sub.add_parser("replay", help="one pass over files or an S3 prefix; print the metrics", formatter_class=_Help)
    rp.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    rp.add_argument(
        "paths",
        nargs="+",
        metavar="PATH_OR_S3_URL",
        help="trail files, directories of them (read recursively), or s3://bucket/prefix URLs",
    )
    rp.add_argument(
        "--output", "-o", choices=["prometheus", "json"], default="prometheus", help="format of the metrics on stdout"
    )
    rp.add_argument(
        "--config", "-c", help="YAML config file; its metrics and logs settings apply (default: built-in defaults)"
    )
    rp.add_argument(
        "--principal-granularity",
        choices=["role", "arn"],
        help="principal label: the role (sessions folded) or the full ARN (config: metrics.principal_granularity; "
        "default: role)",
    )
    rp.add_argument(
        "--log-level",
        choices=LEVELS,
        default="error",
        help="log level; failed inputs are named in the closing summary, warning shows them as they happen",
    )
    rp.add_argument("--log-format", choices=logfmt.FORMATS, default="text", help="format of the log lines on stderr")

    cc = sub.add_parser(
        "check-config", help="validate a config file and print the effective configuration", formatter_class=_Help
    )
    cc.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    cc.add_argument("file", metavar="FILE", help="the YAML config file to check (CTSQS_* variables are applied)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    debug = getattr(args, "log_level", None) == "debug"
    secrets: set[str] = masking.env_secrets()
    try:
        if args.command == "check-config":
            settings = config.load(args.file)
            import yaml  # the file's parser, already loaded by config.load

            sys.stdout.write(yaml.safe_dump(config.masked(settings), sort_keys=False))
            return 0
        tune_malloc()
        if args.command == "replay":
            settings = config.load(args.config, **{"metrics.principal_granularity": args.principal_granularity})
            secrets = config.secrets(settings)
            logfmt.setup(args.log_level, secrets, args.log_format)
            code = _replay(args, settings, secrets)
            if argv is None:  # the command line's own process (console script, python -m), not a caller's
                _end_process(code)
            return code
        settings = config.load(
            args.config,
            listen=args.listen,
            log_level=args.log_level,
            web_config_file=args.web_config_file,
            telemetry_path=args.telemetry_path,
            health_listen=args.health_listen,
            **{"state.path": args.state_path},
        )
        secrets = config.secrets(settings)
        debug = settings.log_level == "debug"
        logfmt.setup(settings.log_level, secrets, args.log_format)
        return _run(settings, args.shutdown_grace)
    except config.ConfigError as exc:
        _say(str(exc), secrets)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("interrupted", secrets)
        return 130
    except Exception as exc:  # a bug, or a failure nobody foresaw: one line, the traceback at debug
        if debug:
            logging.getLogger(__name__).exception("%s failed", args.command)
        _say(f"{args.command} failed: {type(exc).__name__}: {exc} (--log-level debug shows where)", secrets)
        return 1


def _say(text: str, secrets: set[str]) -> None:
    print(f"{PROG}: {masking.mask_text(text, secrets)}", file=sys.stderr)


def _replay(args: argparse.Namespace, settings: config.Settings, secrets: set[str]) -> int:
    from .app import replay_report

    tune_gc()
    text, summary = replay_report(args.paths, settings, args.output)
    code = summary.exit_code()
    if code != report.EXIT_NOTHING_READ:  # nothing read: nothing to print but the reason
        sys.stdout.write(text)
        sys.stdout.flush()
    out = io.StringIO()
    report.render(summary, out)
    sys.stderr.write(masking.mask_text(out.getvalue(), secrets))
    return code


def _end_process(code: int) -> None:
    """End a finished replay without the interpreter's teardown: it would free what the run built (the
    aggregate's millions of keys, strings and counts) one object at a time, 3 to 4 % of a large
    replay, with nothing left to do: the metrics and the summary are written, the log sink is shut
    down, there is no state store. Returns only if the output cannot be flushed, for the usual exit to
    report it."""
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


def _run(settings: config.Settings, grace: float) -> int:
    from .app import App, ListenError
    from .state import StateError

    secrets = config.secrets(settings)
    try:
        app = App(settings)
    except (StateError, config.ConfigError) as exc:  # state file in use / unwritable / corrupt; an OTEL_* value
        _say(str(exc), secrets)
        return EXIT_USAGE
    except ListenError as exc:  # port in use, an address not on this host
        _say(str(exc), secrets)
        return 1
    except (OSError, ValueError) as exc:  # bad web config…
        _say(f"cannot start: {exc}", secrets)
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
    # Not a bare wait(): a process-directed SIGTERM may be taken by any thread, and then only interrupts
    # that thread; the Python handler runs in the main thread at its next bytecode, which a wait without
    # a timeout (blocked in the lock, never woken) would not reach. A timed wait comes back to run it.
    while not done.wait(0.5):
        pass
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
