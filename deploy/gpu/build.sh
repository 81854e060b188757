#!/usr/bin/env bash
# Builds TwIST on a GPU machine that has no network and no -dev packages,
# against the CUDA LibTorch of pip's torch and the prefix of Debian 12
# libraries that deploy/gpu/make-prefix.sh packed into deploy/gpu/prefix.tar.xz
# (gRPC, protobuf, Abseil, glog, SQLite, cpp-httplib, OpenSSL, ICU, GoogleTest,
# pkg-config). Needs x86-64, glibc 2.36 or newer, a host g++, cmake, ninja, and
# a python3 whose torch uses the C++11 ABI (nvcc where the CUDA LibTorch's
# CMake files look for it).
#
# Run from the repository root:
#
#   bash deploy/gpu/build.sh [BUILD_DIR [EXTRA_CMAKE_ARGS...]]   # BUILD_DIR: build-gpu
#   source BUILD_DIR/gpu-env.sh       # then run BUILD_DIR/worker/twist-worker ...
#
# Environment (all optional):
#   TWIST_GPU_PREFIX          where the prefix is unpacked (/tmp/twist-prefix)
#   TWIST_GPU_ARCHIVE         the prefix archive (deploy/gpu/prefix.tar.xz)
#   TWIST_PYTHON              the python with torch (python3)
#   TWIST_TORCH_CMAKE_PREFIX  LibTorch's CMake prefix, instead of torch.utils.cmake_prefix_path
#   TWIST_TORCH_DIR           LibTorch's directory of TorchConfig.cmake, passed as
#                             Torch_DIR alone (nothing added to CMAKE_PREFIX_PATH)
#   TWIST_GPU_TARGETS         targets to build, space-separated ("all" for every one);
#                             default: the daemons, twistctl, worker_step_bench, the tests
#   TWIST_JOBS                parallel jobs (nproc)
set -euo pipefail

die() { echo "build-gpu: $*" >&2; exit 1; }
say() { echo "build-gpu: $*"; }

if [ ! -f CMakeLists.txt ] || [ ! -f deploy/gpu/build.sh ]; then
  die "run this from the TwIST repository root (bash deploy/gpu/build.sh)"
fi
src=$(pwd)
build=${1:-build-gpu}
if [ $# -gt 0 ]; then shift; fi
extra_cmake_args=("$@")
mkdir -p "$build"
build=$(cd "$build" && pwd)
prefix=${TWIST_GPU_PREFIX:-/tmp/twist-prefix}
archive=${TWIST_GPU_ARCHIVE:-deploy/gpu/prefix.tar.xz}
python=${TWIST_PYTHON:-python3}
jobs=${TWIST_JOBS:-$(nproc)}
arch=x86_64-linux-gnu

# --- the machine
[ "$(uname -m)" = x86_64 ] || die "this machine is $(uname -m): the prefix holds x86-64 libraries"
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}' || true)
[ -n "$glibc" ] || glibc=$(ldd --version 2>/dev/null | awk 'NR == 1 {print $NF}')
[ -n "$glibc" ] || die "cannot tell the glibc version (getconf GNU_LIBC_VERSION and ldd --version both failed)"
if [ "$(printf '%s\n%s\n' 2.36 "$glibc" | sort -V | head -1)" != 2.36 ]; then
  die "glibc $glibc is older than 2.36: the prefix's libraries come from Debian 12 (glibc 2.36) and do not load on it; build on a newer system (Ubuntu 24.04 has glibc 2.39)"
fi
for tool in cmake ninja; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH (pip install $tool, or activate the venv that has it)"
done
cxx=${CXX:-g++}
command -v "$cxx" >/dev/null || die "no C++ compiler: $cxx is not on PATH (set CXX)"
say "glibc $glibc, $("$cxx" --version | head -1), cmake $(cmake --version | awk 'NR == 1 {print $3}'), ninja $(ninja --version)"

# --- LibTorch: pip's, through the python that has it, unless given
torch_python=""
if "$python" -c 'import torch' 2>/dev/null; then
  torch_python=$(command -v "$python")
  mapfile -t info < <("$torch_python" -c 'import os, torch
print(torch.__version__, torch._C._GLIBCXX_USE_CXX11_ABI)
print(torch.utils.cmake_prefix_path)
print(os.path.dirname(torch.__file__))')
  read -r torch_version abi <<<"${info[0]}"
  say "python torch $torch_version at ${info[2]} ($torch_python)"
elif [ -z "${TWIST_TORCH_DIR:-}${TWIST_TORCH_CMAKE_PREFIX:-}" ]; then
  die "$python cannot import torch: set TWIST_PYTHON to the python of the venv that has torch (e.g. /opt/torch/.venv/bin/python3), or TWIST_TORCH_DIR to a LibTorch's share/cmake/Torch"
fi
torch_prefix_path=""
if [ -n "${TWIST_TORCH_DIR:-}" ]; then
  torch_dir=$TWIST_TORCH_DIR
else
  if [ -n "${TWIST_TORCH_CMAKE_PREFIX:-}" ]; then
    torch_prefix_path=$TWIST_TORCH_CMAKE_PREFIX
  else
    torch_prefix_path=${info[1]}
    # Debian's libraries use the C++11 ABI; a LibTorch with the old ABI
    # cannot be linked with them.
    if [ "$abi" != True ]; then
      die "torch $torch_version uses the old C++ ABI (torch._C._GLIBCXX_USE_CXX11_ABI is $abi), the prefix's Debian libraries the C++11 ABI: they cannot be linked together. Install a torch built with the C++11 ABI (pip's torch 2.7 and newer), or point TWIST_TORCH_DIR at the libtorch-cxx11-abi archive's share/cmake/Torch"
    fi
  fi
  torch_dir=$torch_prefix_path/Torch
fi
[ -f "$torch_dir/TorchConfig.cmake" ] || die "no TorchConfig.cmake in $torch_dir: point TWIST_TORCH_DIR at LibTorch's share/cmake/Torch"
say "LibTorch: $torch_dir"
# The include directory TorchConfig.cmake adds: TORCH_INSTALL_PREFIX/include,
# its prefix being a fixed number of levels above the file.
# shellcheck disable=SC2016  # ${CMAKE_CURRENT_LIST_DIR} is CMake's, not the shell's
up=$(sed -n 's|.*get_filename_component(TORCH_INSTALL_PREFIX "${CMAKE_CURRENT_LIST_DIR}/\([./]*\)".*|\1|p' \
  "$torch_dir/TorchConfig.cmake" | head -1)
torch_include=""
if [ -n "${TORCH_INSTALL_PREFIX:-}" ]; then
  torch_include=$TORCH_INSTALL_PREFIX/include
elif [ -n "$up" ] && [ -d "$torch_dir/$up/include" ]; then
  torch_include=$(cd "$torch_dir/$up/include" && pwd)
elif [ -n "$torch_python" ] && [ -z "${TWIST_TORCH_DIR:-}${TWIST_TORCH_CMAKE_PREFIX:-}" ]; then
  torch_include=${info[2]}/include
fi
if ! command -v nvcc >/dev/null; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    if [ -x "$d/nvcc" ]; then PATH=$d:$PATH; say "nvcc is not on PATH, using $d/nvcc"; break; fi
  done
fi

# --- the prefix: unpacked once per archive
[ -f "$archive" ] || die "$archive is missing: make it on a Debian 12 machine with 'bash deploy/gpu/make-prefix.sh' and copy it here"
stamp=$(cksum <"$archive" | awk '{print $1 "-" $2}')
if [ "$(cat "$prefix/.archive" 2>/dev/null || true)" != "$stamp" ]; then
  if [ -e "$prefix" ]; then
    if [ ! -f "$prefix/PREFIX-INFO" ] && [ ! -f "$prefix/.unpacking" ]; then
      die "$prefix exists and is not a TwIST prefix: remove it, or set TWIST_GPU_PREFIX to another directory"
    fi
    rm -rf "$prefix"
  fi
  say "unpacking $archive into $prefix"
  mkdir -p "$prefix"
  touch "$prefix/.unpacking"
  if command -v xz >/dev/null; then
    xz -dc "$archive" | tar -xf - -C "$prefix" --strip-components=1
  else  # no xz: Python's tarfile reads it
    "${torch_python:-python3}" - "$archive" "$prefix" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1], "r:xz") as t:
    strip = lambda name: name.split("/", 1)[1] if "/" in name else "."
    for m in t.getmembers():
        m.name = strip(m.name)
        if m.islnk():
            m.linkname = strip(m.linkname)
    members = [m for m in t.getmembers() if m.name != "."]
    kwargs = {"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}
    t.extractall(sys.argv[2], members=members, **kwargs)
PY
  fi
  echo "$stamp" >"$prefix/.archive"
  rm -f "$prefix/.unpacking"
fi
prefix=$(cd "$prefix" && pwd)
libdir=$prefix/lib/$arch
"$prefix/bin/protoc-twist" --version >/dev/null 2>&1 || die "the prefix's protoc does not run here ($prefix/bin/protoc-twist --version fails): is $archive complete?"

export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PKG_CONFIG_LIBDIR=$libdir/pkgconfig:$prefix/share/pkgconfig
export PKG_CONFIG_PATH=$PKG_CONFIG_LIBDIR

# pip's torch ships headers of libraries it bundles (google/protobuf among
# them) in its include directory, which comes before the prefix's on the
# compiler's command line for targets using both. A directory of links to the
# prefix's copies of those, given with -I, is searched before every -isystem
# directory, so the prefix's headers win.
first=$prefix/include-first
rm -rf "$first"
mkdir -p "$first"
shadowed=()
if [ -n "$torch_include" ] && [ "$torch_include" != "$prefix/include" ]; then
  for entry in "$torch_include"/*; do
    name=$(basename "$entry")
    if [ -e "$prefix/include/$name" ]; then
      ln -s "../include/$name" "$first/$name"
      shadowed+=("$name")
    fi
  done
fi
cxx_flags="${CXXFLAGS:-}"
if [ ${#shadowed[@]} -gt 0 ]; then
  say "$torch_include has headers the prefix has too: ${shadowed[*]}; the prefix's are put first (-I$first)"
  cxx_flags="-I$first${cxx_flags:+ $cxx_flags}"
else
  say "LibTorch's include directory (${torch_include:-not found}) shares no headers with the prefix"
fi

# --- configure
cmake_args=(
  -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_CXX_COMPILER="$(command -v "$cxx")"
  "-DCMAKE_PREFIX_PATH=$prefix${torch_prefix_path:+;$torch_prefix_path}"
  -DCMAKE_LIBRARY_PATH="$libdir"
  -DTorch_DIR="$torch_dir"
  -DProtobuf_ROOT="$prefix"
  -DProtobuf_PROTOC_EXECUTABLE="$prefix/bin/protoc-twist"
  -DPKG_CONFIG_EXECUTABLE="$prefix/bin/pkg-config-twist"
  -DCMAKE_CXX_FLAGS="$cxx_flags"
)
# CMake 4 refuses the policy versions older package files (gflags, GTest) ask for.
if [ "$(cmake --version | awk 'NR == 1 {split($3, v, "."); print v[1]}')" -ge 4 ]; then
  cmake_args+=(-DCMAKE_POLICY_VERSION_MINIMUM=3.5)
fi
[ -z "$torch_python" ] || cmake_args+=(-DTWIST_REFERENCE_PYTHON="$torch_python")
say "configuring $build"
start=$SECONDS
cmake "${cmake_args[@]}" "${extra_cmake_args[@]}"
say "configured in $((SECONDS - start)) s"

# Libraries must have come from the prefix (those the configuration looked
# for), and LibTorch must use the C++11 ABI.
checked=()
for var in Protobuf_INCLUDE_DIR Protobuf_LIBRARY_RELEASE Protobuf_PROTOC_EXECUTABLE absl_DIR \
  nlohmann_json_DIR OPENSSL_INCLUDE_DIR OPENSSL_SSL_LIBRARY ICU_INCLUDE_DIR ICU_UC_LIBRARY_RELEASE \
  gRPC_DIR glog_DIR gflags_DIR SQLite3_LIBRARY pkgcfg_lib_HTTPLIB_cpp-httplib GTest_DIR; do
  grep -q "^$var:" "$build/CMakeCache.txt" || continue
  value=$(sed -n "s/^$var:[A-Z]*=//p" "$build/CMakeCache.txt")
  case "$value" in
    "$prefix"/*) checked+=("$var") ;;
    *) die "$var is '$value', not inside $prefix: another copy was found first; remove it from CMAKE_PREFIX_PATH and the build's environment" ;;
  esac
done
say "from the prefix: ${checked[*]}"
if grep -q -- '-D_GLIBCXX_USE_CXX11_ABI=0' "$build/compile_commands.json"; then
  die "LibTorch ($torch_dir) compiles with -D_GLIBCXX_USE_CXX11_ABI=0, the prefix's libraries with the C++11 ABI: use a LibTorch built with the C++11 ABI"
fi

# --- build
if [ -n "${TWIST_GPU_TARGETS:-}" ]; then
  read -r -a targets <<<"$TWIST_GPU_TARGETS"
else
  targets=(twist-coordinator twist-worker twistctl worker_step_bench)
  while IFS= read -r t; do targets+=("$t"); done < <(
    cmake --build "$build" --target help | sed -n 's/^\(twist_[a-z0-9_]*_test\): .*/\1/p' | sort -u)
fi
say "building ${targets[*]} with $jobs jobs"
start=$SECONDS
cmake --build "$build" -j "$jobs" --target "${targets[@]}"
say "built in $((SECONDS - start)) s"

# --- the environment to run what was built
torch_lib=$(dirname "$(sed -n 's/^TORCH_LIBRARY:[A-Z]*=//p' "$build/CMakeCache.txt")")
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
libstdcxx=$("$compiler" -print-file-name=libstdc++.so.6)
case "$libstdcxx" in
  /*) libstdcxx=$(realpath -sm "$libstdcxx") ;;
  *) say "warning: $compiler -print-file-name=libstdc++.so.6 gave no path; gpu-env.sh sets no LD_PRELOAD" >&2
     libstdcxx="" ;;
esac
env_file=$build/gpu-env.sh
{
  echo "# Environment for running (and rebuilding) the TwIST binaries in $build,"
  echo "# written by deploy/gpu/build.sh. Use: source $env_file"
  echo "if [ \"\${TWIST_GPU_ENV:-}\" != \"$build\" ]; then"
  echo "  export TWIST_GPU_ENV=\"$build\""
  echo "  # the prefix's libraries (gRPC, protobuf, ...), then LibTorch's"
  echo "  export LD_LIBRARY_PATH=\"$libdir:$torch_lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
  if [ -n "$libstdcxx" ]; then
    echo "  # pip's libtorch_cpu.so exports its own copy of std::filesystem; the system"
    echo "  # libstdc++, preloaded, binds those symbols first (docs/deployment.md, CUDA)"
    echo "  export LD_PRELOAD=\"$libstdcxx\${LD_PRELOAD:+:\$LD_PRELOAD}\""
  fi
  echo "  # for cmake --build $build: pkg-config looks only in the prefix"
  echo "  export PKG_CONFIG_LIBDIR=\"$PKG_CONFIG_LIBDIR\""
  echo "  export PKG_CONFIG_PATH=\"$PKG_CONFIG_LIBDIR\""
  echo "fi"
} >"$env_file"
say "done. To run the binaries:"
echo
echo "  source $env_file"
echo
echo "which sets:"
sed -n 's/^ *export /  export /p' "$env_file" | grep -v TWIST_GPU_ENV
