#!/usr/bin/env bash
# Creates the virtual environment of the Python test peers that Debian does
# not package: aiortc, the WebRTC stack of the independent WHIP receiver.
# It sees the system's packages too (python3-gi, python3-cryptography).
# Safe to run again: it installs only what is missing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
aiortc_version=1.16.0

if [ -x "$venv/bin/python" ] &&
  "$venv/bin/python" -c "import aiortc, sys; sys.exit(aiortc.__version__ != '$aiortc_version')" 2>/dev/null; then
  exit 0
fi

echo "install-peers: creating $venv with aiortc $aiortc_version"
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "aiortc==$aiortc_version"
