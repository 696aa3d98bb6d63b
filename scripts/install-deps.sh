#!/usr/bin/env bash
# Installs the Debian 12 packages that building bridge, running the demo and
# running the tests need. Safe to run again: it installs only what is missing.
set -euo pipefail

packages=(
  # build
  pkg-config build-essential
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  # media pipeline elements: sources, x264, AAC, MPEG-TS, libsrt, decoders
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  # textoverlay (the pango plugin) for the slate's NO SIGNAL text
  gstreamer1.0-x
  # ALSA capture (alsasrc) for USB camera microphones and --audio hw:N
  gstreamer1.0-alsa
  # test peers and media checks
  libsrt-gnutls-dev srt-tools ffmpeg v4l-utils
  python3 python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0
  python3-cryptography python3-pip unzip
  # the service files: udevadm for the udev rules, systemd-analyze verify
  # for the unit, dpkg-shlibdeps for the package's library dependencies
  udev systemd dpkg-dev
  # RTMP and RTMPS test peer: nginx with the RTMP module, and the stream
  # module that terminates TLS in front of it
  nginx libnginx-mod-rtmp libnginx-mod-stream
  # WHIP: webrtcbin's ICE transport (libnice), the aiortc receiver's
  # virtual environment, and a TURN server for relay candidates
  gstreamer1.0-nice python3-venv coturn
  # the status page, rendered headless by tests/status_server.rs
  chromium
  # make bench: /usr/bin/time -v for CPU time and peak RSS, hyperfine for
  # short commands, perf stat for hardware counters where the kernel allows
  time hyperfine linux-perf
  # the keystore login test: a private D-Bus session bus, a Secret Service
  # (gnome-keyring-daemon) and secret-tool to look up the stored item
  dbus-daemon gnome-keyring libsecret-tools
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: every package is installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=sudo
else
  sudo_cmd=
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# The tests run their own nginx and TURN server on free loopback ports.
# Installing the nginx or coturn package would start its system service, so
# a policy-rc.d that denies every service start stays in place while apt
# runs (unless the machine already has one, as container images do).
policy=/usr/sbin/policy-rc.d
installs_service=false
for package in "${missing[@]}"; do
  if [ "$package" = nginx ] || [ "$package" = coturn ]; then
    installs_service=true
  fi
done
if $installs_service && [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$policy" >/dev/null
  $sudo_cmd chmod 755 "$policy"
  trap '$sudo_cmd rm -f "$policy"' EXIT
fi

$sudo_cmd apt-get update -q
$sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"

# Under systemd the unit is still enabled for the next boot: disable it.
if $installs_service && [ -d /run/systemd/system ]; then
  $sudo_cmd systemctl disable nginx.service coturn.service || true
fi
