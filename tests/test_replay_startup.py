"""What `replay` loads: only what a pass over local files needs. The daemon's modules (HTTP server, web
config and bcrypt), YAML without a config file, pydantic-settings, the idna codec (for the default listen
address), and without configuration the settings' validators, are start-up time a batch run would pay
for nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from exporter.config import SAMPLE_DIR
from exporter.config_sources import NOT_CONFIG, PREFIX

NOT_FOR_REPLAY = [
    "bcrypt",
    "encodings.idna",
    "exporter.server",
    "exporter.webconfig",
    "pydantic_settings",
    "yaml",
]

# runs `code`, then prints which of NOT_FOR_REPLAY are loaded
PROBE = """
import contextlib, io, json, sys
{code}
print(json.dumps([m for m in {names!r} if m in sys.modules]))
"""


def loaded_after(code: str) -> list[str]:
    r = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code, names=NOT_FOR_REPLAY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        # no configuration from the environment: the tuning switches only
        env={k: v for k, v in os.environ.items() if not k.startswith(PREFIX) or k[len(PREFIX) :] in NOT_CONFIG},
    )
    return json.loads(r.stdout.splitlines()[-1])


def test_replay_loads_none_of_the_daemons_modules() -> None:
    code = f"""
from exporter.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    assert main(["replay", {str(SAMPLE_DIR)!r}]) == 0
"""
    assert loaded_after(code) == []


def test_the_probe_sees_modules_loaded() -> None:
    code = "import exporter.server, yaml, encodings.idna"  # pydantic-settings: a dependency no more
    assert loaded_after(code) == [m for m in NOT_FOR_REPLAY if m != "pydantic_settings"]


def test_replay_without_configuration_builds_no_validator() -> None:
    code = f"""
from exporter import config
from exporter.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    assert main(["replay", {str(SAMPLE_DIR)!r}]) == 0
assert not any(m.__pydantic_complete__ for m in (config.Settings, config.StateConfig, config.FileSourceConfig))
config.Settings()  # and the first validation builds them
assert config.Settings.__pydantic_complete__
"""
    loaded_after(code)
