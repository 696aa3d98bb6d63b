#!/usr/bin/env bash
# Installs cargo-deb, which `make deb` and tests/appliance_package.rs use to
# build the Debian package. Safe to run again: it installs only when the
# pinned version is missing.
set -euo pipefail

version=3.8.0

if cargo deb --version 2>/dev/null | grep -q " ${version}\$"; then
  echo "install-deb-tools: cargo-deb ${version} is installed"
  exit 0
fi

echo "install-deb-tools: installing cargo-deb ${version}"
cargo install cargo-deb --version "${version}" --locked
