#!/usr/bin/env bash
# Streams the looped sample clip through the bridge to a local libsrt
# receiver for about 10 seconds, then prints what the receiver got.
# The receiver checks the streamid's structure and the session token's
# claims and signature, as the TRaX edge does.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work="$root/out/demo"
duration=${DEMO_DURATION:-10}
path="inputs/srt-demo"
python=/usr/bin/python3
# make builds into $CARGO_TARGET_DIR when it is set, so look there first.
bridge="${CARGO_TARGET_DIR:-$root/target}/debug/bridge"

rm -rf "$work"
mkdir -p "$work"
umask 077

port=$($python -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

echo "demo: minting a session token for $path"
$python tests/peers/mint_token.py --key "$work/signing-key.pem" --public-key-out "$work/signing-key.pub.pem" \
  --path "$path" --exp-in-s 600 --out "$work/session-token"

echo "demo: starting the SRT receiver on 127.0.0.1:$port"
$python tests/peers/srt_receiver.py --port "$port" --expected-path "$path" \
  --public-key "$work/signing-key.pub.pem" --output "$work/received.ts" \
  --sizes-file "$work/message-sizes.txt" > "$work/receiver.log" 2> "$work/receiver.stderr" &
receiver=$!
trap 'kill "$receiver" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q '"listening"' "$work/receiver.log" 2>/dev/null && break
  sleep 0.1
done
grep -q '"listening"' "$work/receiver.log" || { echo "demo: the receiver did not start" >&2; cat "$work/receiver.stderr" >&2; exit 1; }

echo "demo: running bridge for $duration s"
set +e
"$bridge" --device "file:$root/media/bigbuckbunny.mp4" --loop \
  --output "srt://127.0.0.1:$port" --path "$path" --token-file "$work/session-token" \
  --duration "$duration" 2>&1 | tee "$work/bridge.log"
bridge_status=${PIPESTATUS[0]}
set -e

kill -TERM "$receiver"
for _ in $(seq 1 100); do
  kill -0 "$receiver" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$receiver" 2>/dev/null; then
  echo "demo: the receiver did not stop within 10 s of SIGTERM; killing it" >&2
  kill -KILL "$receiver" 2>/dev/null || true
fi
wait "$receiver" 2>/dev/null || true
trap - EXIT

echo
echo "demo: bridge exited with $bridge_status"
echo "demo: receiver events:"
grep -E '"(connecting|connected|eos)"' "$work/receiver.log" | sed 's/^/  /' || true
echo
set +e
$python "$root/scripts/report.py" "$work/received.ts" --sizes "$work/message-sizes.txt" \
  --expect-codecs h264,aac --expect-size 1280x720 --min-duration $((duration - 1))
report_status=$?
set -e
[ "$bridge_status" -eq 0 ] || exit "$bridge_status"
exit "$report_status"
