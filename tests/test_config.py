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
