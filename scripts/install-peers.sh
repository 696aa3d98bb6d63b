#!/usr/bin/env bash
# Installs the test peers that Debian does not package: the virtual
# environment with aiortc, the WebRTC stack of the independent WHIP receiver
# (it also imports the system's python3-gi and python3-cryptography), and
# the node packages of the OpenID provider in tests/peers/oidc (npm ci from
# its package-lock.json). Safe to run again: it installs only what is missing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
aiortc_version=1.16.0

oidc_dir="$root/tests/peers/oidc"

install_aiortc() {
  if [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" -c "import aiortc, sys; sys.exit(aiortc.__version__ != '$aiortc_version')" 2>/dev/null; then
    return
  fi
  echo "install-peers: creating $venv with aiortc $aiortc_version"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "aiortc==$aiortc_version"
}

install_oidc_provider() {
  for tool in node npm; do
    if ! command -v "$tool" >/dev/null; then
      echo "install-peers: $tool not found; install Node.js 20.19 or later with npm, e.g. from NodeSource (Debian 12's nodejs package is 18, too old)" >&2
      exit 1
    fi
  done
  if ! node -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 20 || (major === 20 && minor >= 19) ? 0 : 1)'; then
    echo "install-peers: node $(node --version) is too old for oidc-provider; install Node.js 20.19 or later" >&2
    exit 1
  fi
  # The lock file is newer than the last install when package-lock.json changed.
  local marker="$oidc_dir/node_modules/.package-lock.json"
  if [ -f "$marker" ] && [ "$marker" -nt "$oidc_dir/package-lock.json" ]; then
    return
  fi
  echo "install-peers: npm ci in $oidc_dir"
  (cd "$oidc_dir" && npm ci --no-audit --no-fund --loglevel=error)
}

install_aiortc
install_oidc_provider
