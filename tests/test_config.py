"""Configuration: YAML, CTSQS_* environment overrides, flags, errors naming the key, masking."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter import config


def check_config(path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_check_config_prints_effective_config_with_secrets_masked(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "listen: 127.0.0.1:9200\nstate:\n  redis_url: redis://user:hunter2@redis:6379/0\n"
        "sources:\n  - type: file\n    path: /data/trail\n    poll_interval: 1m\n"
    )
    r = check_config(cfg, {"CTSQS_METRICS__MAX_QUEUES": "42"})
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(r.stdout)
    assert "hunter2" not in r.stdout
    assert doc["state"]["redis_url"] == "redis://user:****@redis:6379/0"
    assert doc["metrics"]["max_queues"] == 42  # env beats the file's default
    assert doc["sources"][0] == {
        "type": "file",
        "path": "/data/trail",
        "name": "file",
        "poll_interval": 60.0,
        "settle": 1.0,
    }
    assert doc["listen"] == "127.0.0.1:9200"


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("sources:\n  - type: file\n", ["sources[0].path"]),
        ("sources:\n  - type: file\n    path: x\n    pth: y\n", ["sources[0].pth"]),
        ("sources:\n  - type: nosuch\n", ["sources[0]"]),
        ("metrics:\n  principal_granularity: person\n", ["metrics.principal_granularity"]),
        ("metrics:\n  include_queues: '(['\n", ["metrics.include_queues"]),
        ("listen: 10355\n", ["listen"]),
        ("state:\n  commit_interval: soon\n", ["state.commit_interval"]),
        ("listne: 1.2.3.4:5\n", ["listne"]),
        ("- a list\n", ["top level"]),
        ("key: [unclosed\n", ["not valid YAML"]),
    ],
)
def test_invalid_config_exit_2_naming_the_key(tmp_path: Path, text: str, keys: list[str]) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    r = check_config(cfg)
    assert r.returncode == 2, r.stdout
    for k in keys:
        assert k in r.stderr


def test_missing_file(tmp_path: Path) -> None:
    r = check_config(tmp_path / "nope.yaml")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_env_overrides_yaml_and_flags_override_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("listen: 127.0.0.1:1000\nstate:\n  path: /from/yaml.db\n")
    monkeypatch.setenv("CTSQS_LISTEN", "127.0.0.1:2000")
    monkeypatch.setenv("CTSQS_METRICS__EXCLUDE_ACCOUNTS", "111,222")
    s = config.load(cfg)
    assert s.listen == "127.0.0.1:2000"
    assert s.state.path == Path("/from/yaml.db")  # nested keys merge: env did not wipe state.path
    assert s.metrics.exclude_accounts == ["111", "222"]
    s = config.load(cfg, listen="127.0.0.1:3000")
    assert s.listen == "127.0.0.1:3000"


def test_embedded_default_reads_the_shipped_sample() -> None:
    s = config.load()
    assert s.sources[0].path == config.SAMPLE_DIR
    assert any(config.SAMPLE_DIR.rglob("*.json.gz"))
    assert s.listen == "0.0.0.0:10355"


def test_example_configs_validate() -> None:
    root = Path(__file__).resolve().parent.parent / "config"
    examples = sorted(root.glob("*.yaml"))
    assert examples
    for p in examples:
        config.load(p)


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("15s", 15), ("5m", 300), ("1h", 3600), (7, 7.0)])
def test_durations(text: object, seconds: float) -> None:
    assert config.parse_duration(text) == seconds


# -- hygiene: where a bad value came from, minimums, the listen address, list items from the environment --


@pytest.mark.parametrize(
    ("text", "env", "want"),
    [
        # from the file: the key and the file
        ("metrics:\n  max_queues: many\n", {}, ["metrics.max_queues", "(from {cfg})"]),
        # from the environment: the key and the variable
        (
            "{}\n",
            {"CTSQS_METRICS__MAX_QUEUES": "many"},
            ["metrics.max_queues", "(from environment variable CTSQS_METRICS__MAX_QUEUES)"],
        ),
        # a whole list from the environment: a missing key inside it is the variable's
        (
            "sources:\n  - type: file\n    path: /a\n",
            {"CTSQS_SOURCES": '[{"type": "file"}]'},
            ["sources[0].path: Field required", "CTSQS_SOURCES)"],
        ),
        # one item of the file's list from the environment
        (
            "sources:\n  - type: file\n    path: /a\n",
            {"CTSQS_SOURCES__0__POLL_INTERVAL": "soon"},
            ["sources[0].poll_interval", "CTSQS_SOURCES__0__POLL_INTERVAL)"],
        ),
        # no busy loop
        (
            "sources:\n  - type: file\n    path: /a\n    poll_interval: 0\n",
            {},
            ["sources[0].poll_interval", "greater than or equal to 0.1"],
        ),
        (
            "sources:\n  - type: s3-sqs\n    queue_url: https://q\n    wait_time: 0s\n",
            {},
            ["sources[0]", "poll_interval must be at least 0.1s"],
        ),
        ("state:\n  commit_interval: 0s\n", {}, ["state.commit_interval"]),
        # listen must resolve
        ("listen: no-such-host.invalid:9108\n", {}, ["listen", "cannot resolve", "(from {cfg})"]),
        ("listen: 127.0.0.1:65536\n", {}, ["listen"]),
        # bad JSON in a variable: the variable, no traceback
        (
            "{}\n",
            {"CTSQS_SOURCES": '[{"type": "file",'},
            ["environment variable CTSQS_SOURCES (sources): not valid JSON"],
        ),
        # an index that would leave a gap
        (
            "sources:\n  - type: file\n    path: /a\n",
            {"CTSQS_SOURCES__3__PATH": "/b"},
            ["CTSQS_SOURCES__3__PATH", "use index 1"],
        ),
    ],
)
def test_config_errors_name_the_key_and_its_origin(tmp_path: Path, text: str, env: dict, want: list[str]) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    r = check_config(cfg, env)
    assert r.returncode == 2, r.stdout
    assert "Traceback" not in r.stderr
    for w in want:
        assert w.format(cfg=cfg) in r.stderr, r.stderr


def test_flag_errors_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match=r"listen: .* \(from flag --listen\)"):
        config.load(None, listen="nowhere")
    with pytest.raises(config.ConfigError, match=r"state.path: .* \(from flag --state-path\)"):
        config.load(None, **{"state.path": 5})
    r = subprocess.run(
        [sys.executable, "-m", "exporter", "run", "--listen", "no-such-host.invalid:1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "(from flag --listen)" in r.stderr and "Traceback" not in r.stderr


def test_yaml_error_gives_the_line_not_its_text(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("logs:\n  headers: {authorization: Bearer abcdef123\n")
    r = check_config(cfg)
    assert r.returncode == 2 and "not valid YAML at line" in r.stderr
    assert "abcdef123" not in r.stderr


def test_list_items_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sources:\n  - type: file\n    path: /from/file\n    name: a\n")
    monkeypatch.setenv("CTSQS_SOURCES__0__PATH", "/from/env")
    monkeypatch.setenv("CTSQS_SOURCES__1", '{"type": "s3", "bucket": "trail", "name": "b"}')
    monkeypatch.setenv("CTSQS_SOURCES__1__ACCOUNTS", "111,222")
    monkeypatch.setenv("CTSQS_LOGS__HEADERS__X_TOKEN", "t")
    s = config.load(cfg)
    assert [src.name for src in s.sources] == ["a", "b"]
    assert s.sources[0].path == Path("/from/env")  # the item's other keys stay the file's
    assert s.sources[1].accounts == ["111", "222"]
    assert s.logs.headers == {"x_token": "t"}
    monkeypatch.setenv("CTSQS_SOURCES", '[{"type": "file", "path": "/whole"}]')
    monkeypatch.delenv("CTSQS_SOURCES__1")
    monkeypatch.delenv("CTSQS_SOURCES__1__ACCOUNTS")
    s = config.load(cfg)
    assert len(s.sources) == 1 and s.sources[0].path == Path("/from/env")  # whole list first, then the item


def test_unknown_variables_are_warned_about_one_line_each(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    env = {"CTSQS_LISTNE": "x", "CTSQS_METRICS__MAX_QUEUEZ": "5", "CTSQS_NATIVE": "0", "CTSQS_NO_SHA_NI": "1"}
    r = check_config(cfg, env)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert "CTSQS_LISTNE" in lines[0] and "listne" in lines[0]
    assert "CTSQS_METRICS__MAX_QUEUEZ" in lines[1] and "metrics.max_queuez" in lines[1]


def test_top_level_keys_in_any_case_and_no_hidden_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("Listen: 127.0.0.1:2001\nMETRICS:\n  max_queues: 5\n")
    s = config.load(cfg)
    assert s.listen == "127.0.0.1:2001" and s.metrics.max_queues == 5
    # nested keys are exact, as they always were
    cfg.write_text("metrics:\n  MAX_QUEUES: 5\n")
    with pytest.raises(config.ConfigError, match=r"metrics.MAX_QUEUES: Extra inputs"):
        config.load(cfg)
    # a pydantic-settings init argument is no key of the file
    cfg.write_text("_env_file: /etc/passwd\n")
    with pytest.raises(config.ConfigError, match=r"_env_file: Extra inputs"):
        config.load(cfg)


@pytest.mark.parametrize(
    ("listen", "error"),
    [
        ("127.0.0.1:1", None),
        ("localhost:1", None),
        ("[::1]:1", None),
        (":1", None),
        ("a..b:1", "label empty or too long"),  # the idna codec's check, for a name that never reaches it
        ("x" * 64 + ".example:1", "label empty or too long"),
        ("ü.invalid:1", "cannot resolve the address 'ü.invalid'"),
    ],
)
def test_listen_host_checked_as_getaddrinfo_takes_it(listen: str, error: str | None) -> None:
    if error is None:
        assert config.load(None, listen=listen).listen == listen
    else:
        with pytest.raises(config.ConfigError, match=error):
            config.load(None, listen=listen)


def test_defaults_built_without_validation_equal_the_validated_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing configured load() builds the defaults without validating them (no schema built)."""
    for name in [n for n in os.environ if n.upper().startswith("CTSQS_")]:
        monkeypatch.delenv(name)
    fast, validated = config.load(None), config.Settings()
    assert fast == validated
    assert fast.model_dump(mode="json") == validated.model_dump(mode="json")
    assert repr(fast) == repr(validated)
    # and an equal value set through the validating path changes nothing either
    assert config.load(None, listen="0.0.0.0:10355") == fast


@pytest.mark.parametrize(
    "text",
    [
        "logs:\n  redact:\n    hash_key: hk-secret-1\n  headers: {authorization: Bearer tok-2}\n",
        "sources:\n  - type: s3\n    bucket: b-x\n    endpoint_url: https://u:pw-3@s3.local/?X-Amz-Signature=sig-4\n"
        "    external_id: ext-5\n",
        "state:\n  redis_url: redis://:pw-6@127.0.0.1:6379/0\n",
    ],
)
def test_secrets_are_those_of_the_dumped_settings(tmp_path: Path, text: str) -> None:
    from exporter import masking

    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    s = config.load(cfg)
    want = masking.secrets_in(s.model_dump(mode="json")) | masking.env_secrets()
    assert config.secrets(s) == want and len(want - masking.env_secrets()) >= 1
