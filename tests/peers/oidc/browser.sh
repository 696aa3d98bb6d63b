#!/bin/sh
# BROWSER program for tests: drives the authorization request URL in $1 with
# drive.mjs instead of opening a browser. Options come from the environment:
#   OIDC_DRIVE_USER=NAME          login name (default: the provider's test user)
#   OIDC_DRIVE_PASSWORD=...       password (default: the provider's test password)
#   OIDC_DRIVE_DENY=1             deny at the consent page
#   OIDC_DRIVE_STATE_OVERRIDE=S   deliver the redirect with state replaced by S
#   OIDC_DRIVE_RESULT=FILE        append drive.mjs's JSON result line to FILE
#   OIDC_DRIVE_COOKIE_JAR=FILE    keep the provider's session cookies in FILE
# An end-session URL is driven too: the sign-out is confirmed.
# The result line goes to stdout as well, and the exit code is drive.mjs's.
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ "$#" -ne 1 ]; then
  echo "browser.sh: expected one URL argument, got $#" >&2
  exit 2
fi

set -- "$1" --user "${OIDC_DRIVE_USER:-tester}"
if [ "${OIDC_DRIVE_DENY:-0}" = 1 ]; then
  set -- "$@" --deny
fi
if [ -n "${OIDC_DRIVE_STATE_OVERRIDE:-}" ]; then
  set -- "$@" --state-override "$OIDC_DRIVE_STATE_OVERRIDE"
fi

if [ -n "${OIDC_DRIVE_RESULT:-}" ]; then
  result=$(node "$here/drive.mjs" authorize "$@")
  status=$?
  printf '%s\n' "$result" >>"$OIDC_DRIVE_RESULT"
  printf '%s\n' "$result"
  exit "$status"
fi
exec node "$here/drive.mjs" authorize "$@"
