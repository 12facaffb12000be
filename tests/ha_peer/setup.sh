#!/usr/bin/env bash
# A real Home Assistant core, offline, for the end-to-end test of what haunt-fm ships for it.
# Usage: bash setup.sh VENV_DIR   -> VENV_DIR/bin/hass (core 2024.3.3 and what its config needs)
# PYTHON picks the interpreter (default python3.11: 2024.3.3 is the last core for Python 3.11).
set -euo pipefail
V=${1:?usage: setup.sh VENV_DIR}
PY=${PYTHON:-python3.11}
mkdir -p "$(dirname "$V")"
"$PY" -m venv "$V"
# josepy 2.x breaks every request of 2024.3.3.
"$V/bin/pip" install -q --disable-pip-version-check homeassistant==2024.3.3 "josepy<2"
C=$("$V/bin/python" -c 'import homeassistant, os; print(os.path.join(os.path.dirname(homeassistant.__file__), "package_constraints.txt"))')
# What Home Assistant would pip-install at start for the integrations in configuration.yaml
# (the test starts it with --skip-pip, and it has no network then).
"$V/bin/pip" install -q --disable-pip-version-check -c "$C" colorlog==6.8.2 home-assistant-frontend==20240307.0 \
  securetar==2024.2.1 psutil-home-assistant==0.0.1 janus==1.0.0 Pillow==10.2.0 PyTurboJPEG==1.7.1 \
  mutagen==1.47.0 ha-ffmpeg==3.1.0 hassil==1.6.1 home-assistant-intents==2024.3.12 SQLAlchemy==2.0.27 \
  fnv-hash-fast==0.5.0 pyotp==2.8.0 PyQRCode==1.2.1 numpy==1.26.0
touch "$V/.complete"
