#!/usr/bin/env bash
# Streams the looped sample clip through the bridge to a local libsrt
# receiver and a local WHIP (WebRTC) receiver for about 10 seconds, then
# prints what each receiver got.
#
# The bridge gets its stream path, session token and ingest URL from a local
# stand-in for TRaX's /v1 API with an API key, as it would from TRaX. The
# receivers check the credentials (the SRT streamid, the WHIP Bearer token)
# and verify the token's claims and ES256 signature against the stand-in's
# JWKS, as the TRaX edge does. The WHIP receiver is aiortc, a WebRTC stack
# independent of the bridge's GStreamer one.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work="$root/out/demo"
duration=${DEMO_DURATION:-10}
source_id="src_cam1"
python=/usr/bin/python3
venv_python="$root/.venv/bin/python"
bridge="${CARGO_TARGET_DIR:-$root/target}/debug/bridge"

rm -rf "$work"
mkdir -p "$work"
umask 077

free_port() {
  $python -c 'import socket, sys; kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM; s = socket.socket(socket.AF_INET, kind); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$1"
}

# Waits up to 10 s for a JSON event line in a log file.
wait_for_event() {
  local file=$1 event=$2
  for _ in $(seq 1 100); do
    grep -q "\"event\": *\"$event\"" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: no '$event' event in $file" >&2
  return 1
}

# Stops a peer with SIGTERM, and kills it if it has not exited after 10 s.
stop_peer() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "demo: process $pid did not stop within 10 s of SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

srt_port=$(free_port udp)
api_port=$(free_port tcp)
head -c 24 /dev/urandom | base64 | tr -d '/+=' | sed 's/^/sk_live_demo_/' > "$work/api-key"

echo "demo: starting the /v1 stand-in on 127.0.0.1:$api_port"
$python tests/peers/v1_standin.py --port "$api_port" --api-key-file "$work/api-key" \
  --ingest-srt "srt://127.0.0.1:$srt_port" > "$work/api.log" 2> "$work/api.stderr" &
api=$!
trap 'stop_peer "$api"' EXIT
wait_for_event "$work/api.log" listening || { cat "$work/api.stderr" >&2; exit 1; }
origin="http://127.0.0.1:$api_port"

echo "demo: starting the SRT receiver on 127.0.0.1:$srt_port"
$python tests/peers/srt_receiver.py --port "$srt_port" --jwks-url "$origin/.well-known/jwks.json" \
  --output "$work/received.ts" --sizes-file "$work/message-sizes.txt" \
  > "$work/receiver.log" 2> "$work/receiver.stderr" &
receiver=$!
trap 'stop_peer "$receiver"; stop_peer "$api"' EXIT
wait_for_event "$work/receiver.log" listening || { cat "$work/receiver.stderr" >&2; exit 1; }

echo "demo: starting the WHIP receiver (aiortc)"
"$venv_python" tests/peers/whip_receiver.py --jwks-url "$origin/.well-known/jwks.json" \
  --record-dir "$work/whip" > "$work/whip.log" 2> "$work/whip.stderr" &
whip=$!
trap 'stop_peer "$whip"; stop_peer "$receiver"; stop_peer "$api"' EXIT
wait_for_event "$work/whip.log" listening || { cat "$work/whip.stderr" >&2; exit 1; }
whip_port=$($python -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["port"])' "$work/whip.log")

echo "demo: sources the API key can see:"
"$bridge" sources --api-url "$origin" --api-key-file "$work/api-key" | sed 's/^/  /'

echo "demo: running bridge for $duration s on source $source_id"
set +e
"$bridge" --device "file:$root/media/bigbuckbunny.mp4" --loop \
  --source "$source_id" --api-url "$origin" --api-key-file "$work/api-key" \
  --output "srt://127.0.0.1:$srt_port" --output "http://127.0.0.1:$whip_port" \
  --ice-address 127.0.0.1 --duration "$duration" 2>&1 | tee "$work/bridge.log"
bridge_status=${PIPESTATUS[0]}
set -e

stop_peer "$whip"
stop_peer "$receiver"
stop_peer "$api"
trap - EXIT

echo
echo "demo: bridge exited with $bridge_status"
echo "demo: receiver events:"
grep -E '"(jwks|connecting|connected|eos)"' "$work/receiver.log" | sed 's/^/  /' || true
echo
set +e
$python "$root/scripts/report.py" "$work/received.ts" --sizes "$work/message-sizes.txt" \
  --expect-codecs h264,aac --expect-size 1280x720 --min-duration $((duration - 1))
report_status=$?
set -e
echo
echo "demo: what the WHIP receiver got (decoded by aiortc):"
set +e
$python "$root/scripts/whip_report.py" "$work/whip/session-1" --expect-size 1280x720 \
  --min-seconds $((duration - 2))
whip_status=$?
set -e
[ "$bridge_status" -eq 0 ] || exit "$bridge_status"
[ "$report_status" -eq 0 ] || exit "$report_status"
exit "$whip_status"
