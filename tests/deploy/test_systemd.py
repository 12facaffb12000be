"""The systemd unit the README tells users to install runs what the CLI offers, as a user."""

from __future__ import annotations

import configparser
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "haunt-fm.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_runs_serve_on_the_lan_as_an_unprivileged_user_and_restarts_on_failure() -> None:
    service = _unit()["Service"]
    assert service["User"] == "haunt-fm" and service["User"] != "root"
    assert service["Restart"] == "on-failure"
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/haunt-fm/.venv/bin/haunt-fm" and argv[1] == "serve"
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    # The options it passes are real `serve` options.
    exe = Path(sys.executable).parent / "haunt-fm"
    help_text = subprocess.run([exe, "serve", "--help"], capture_output=True, text=True, timeout=60).stdout
    for option in (a for a in argv[2:] if a.startswith("--")):
        assert option in help_text
    assert "HAUNTFM_DATA_DIR=/var/lib/haunt-fm" in service["Environment"] or any(
        "HAUNTFM_DATA_DIR=/var/lib/haunt-fm" in line for line in UNIT.read_text().splitlines()
    )
    assert service["StateDirectory"] == "haunt-fm"
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_readme_walks_through_installing_it() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "deploy/systemd/haunt-fm.service" in readme
    assert "systemctl enable --now haunt-fm" in readme
