#!/bin/sh
# Installs the test OIDC provider's npm dependencies (exactly package-lock.json) into
# node_modules next to this script. Does nothing when they are already installed from
# the current lock file, so it is cheap to call before every test run.
set -eu
cd "$(dirname "$0")"

if ! command -v npm >/dev/null 2>&1; then
    echo "install.sh: npm is required (apt-get install -y nodejs npm)" >&2
    exit 1
fi

stamp=node_modules/.hoopd-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
