#!/usr/bin/env bash
# Makes deploy/gpu/prefix.tar.xz: every library and tool TwIST needs besides
# LibTorch and a compiler (gRPC, Protocol Buffers with protoc and
# grpc_cpp_plugin, Abseil, glog, gflags, SQLite, cpp-httplib, nlohmann-json,
# jemalloc, OpenSSL, ICU, GoogleTest/GoogleMock, pkg-config and the runtime libraries
# they need), unpacked from Debian 12 packages into one relocatable prefix.
# deploy/gpu/build.sh unpacks it on a GPU machine that has no network and no
# -dev packages and builds TwIST there against pip's CUDA LibTorch.
#
# Run on a Debian 12 (bookworm) amd64 machine that can reach a Debian mirror
# (root is not needed; `apt-get update` must have run):
#
#   bash deploy/gpu/make-prefix.sh [ARCHIVE]     # default deploy/gpu/prefix.tar.xz
#
# Nothing is installed on this machine: packages are fetched with
# `apt-get download` and unpacked with `dpkg -x` into a temporary directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
archive=${1:-$here/prefix.tar.xz}
arch=x86_64-linux-gnu

# The exact package list, by what needs it. Runtime libraries that every
# Ubuntu 24.04 has (glibc, libstdc++, libgcc_s, liblzma) are left out; see
# `base_libs` below.
packages=(
  # Protocol Buffers: headers, libprotobuf, protoc and the libprotoc it runs on
  libprotobuf-dev libprotobuf32 libprotobuf-lite32 protobuf-compiler libprotoc32
  # gRPC: headers, libraries, CMake config, grpc_cpp_plugin (gRPC's CMake
  # config checks that its other plugins exist too, so the package stays whole)
  libgrpc++-dev libgrpc-dev libgrpc29 libgrpc++1.51 protobuf-compiler-grpc
  # gRPC's dependencies (its CMake config finds each of them)
  libabsl-dev libabsl20220623          # Abseil, also used by TwIST directly
  libc-ares-dev libc-ares2             # c-ares (DNS)
  libre2-dev libre2-9                  # RE2 (found through pkg-config)
  libssl-dev libssl3                   # OpenSSL, also used by TwIST directly
  zlib1g-dev zlib1g                    # zlib, also needed by protobuf and cpp-httplib
  # glog (the daemons' logging) and what its CMake config finds
  libgoogle-glog-dev libgoogle-glog0v6 libgflags-dev libgflags2.2 libunwind-dev libunwind8
  # the coordinator's job store
  libsqlite3-dev libsqlite3-0
  # the HTTP status endpoint: cpp-httplib, and Brotli that its .pc file requires
  libcpp-httplib-dev libcpp-httplib0.11 libbrotli-dev libbrotli1
  # jemalloc, the daemons' allocator (docs/architecture.md, "Memory")
  libjemalloc-dev libjemalloc2
  # JSON (header-only)
  nlohmann-json3-dev
  # Unicode character classes of the GPT-2 tokenizer (ICU, with its data library)
  libicu-dev libicu72
  # tests: GoogleTest and GoogleMock (static libraries and CMake config)
  libgtest-dev libgmock-dev
  # pkg-config, which CMake needs for cpp-httplib and RE2
  pkgconf-bin libpkgconf3
)

# Libraries a bare Ubuntu 24.04 (glibc 2.39) always has: a DT_NEEDED entry of
# the prefix may name one of these without the prefix carrying it. liblzma is
# a pre-dependency of dpkg, so it is on every Debian and Ubuntu system.
base_libs=(
  libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libresolv.so.2
  ld-linux-x86-64.so.2 libstdc++.so.6 libgcc_s.so.1 libz.so.1 liblzma.so.5
)

die() { echo "make-prefix: $*" >&2; exit 1; }

# --- this machine must be Debian 12 amd64 with the tools used below
if ! grep -qx 'VERSION_ID="12"' /etc/os-release 2>/dev/null || ! grep -qx 'ID=debian' /etc/os-release; then
  die "this is not Debian 12 (bookworm): the prefix must be made from Debian 12's packages (see /etc/os-release)"
fi
[ "$(dpkg --print-architecture)" = amd64 ] || die "this machine is $(dpkg --print-architecture), the prefix is for amd64"
for tool in apt-get dpkg dpkg-deb readelf xz tar realpath du; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian packages: apt, dpkg, binutils, xz-utils, tar, coreutils)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/twist-make-prefix.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/root"

# --- download and unpack
echo "make-prefix: downloading ${#packages[@]} packages"
if ! (cd "$work/debs" && apt-get download -q "${packages[@]}" >"$work/download.log" 2>&1); then
  cat "$work/download.log" >&2
  die "apt-get download failed: run 'apt-get update' (as root) so the package lists are current, and check that a Debian 12 mirror is reachable"
fi
for deb in "$work"/debs/*.deb; do
  dpkg -x "$deb" "$work/root"
  # shellcheck disable=SC2016  # dpkg-deb's fields, not shell variables
  dpkg-deb --showformat='${Package} ${Version}\n' -W "$deb" >>"$work/versions"
done

# Debian 12 packages still put some files under /lib and /bin; merge them into
# /usr, then make /usr the prefix.
for dir in lib lib64 bin sbin; do
  if [ -d "$work/root/$dir" ] && [ ! -L "$work/root/$dir" ]; then
    mkdir -p "$work/root/usr/$dir"
    cp -a "$work/root/$dir/." "$work/root/usr/$dir/"
    rm -rf "${work:?}/root/$dir"
  fi
done
prefix=$work/twist-prefix
mv "$work/root/usr" "$prefix"

# --- drop what a build does not need: documentation, sources and static
# libraries, except those a CMake config file names (its imported targets must
# exist: GoogleTest and GoogleMock, which Debian ships only as static
# libraries, and gflags' static variants)
rm -rf "$prefix"/share/{doc,doc-base,man,info,lintian,bug,aclocal,gdb} "$prefix/src"
declare -A keep_static=()
while IFS= read -r name; do keep_static[$name]=1; done < <(
  grep -rhoE '[[:alnum:]_+.-]+\.a"' "$prefix/lib/$arch/cmake" "$prefix/share/cmake" | tr -d '"' | sort -u)
for lib in libgtest.a libgtest_main.a libgmock.a libgmock_main.a; do
  [ -n "${keep_static[$lib]:-}" ] || die "$lib is not named by GoogleTest's CMake config any more: has libgtest-dev changed?"
done
while IFS= read -r -d '' a; do
  [ -n "${keep_static[$(basename "$a")]:-}" ] || rm -f "$a"
done < <(find "$prefix/lib" -name '*.a' -print0)
find "$prefix" -depth -type d -empty -delete

# --- relocatable: absolute symbolic links become relative ones
while IFS= read -r -d '' link; do
  target=$(readlink "$link")
  case "$target" in
    /usr/*) inside=$prefix/${target#/usr/} ;;
    /*) inside=$prefix/${target#/} ;;
    *) continue ;;
  esac
  ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$inside")" "$link"
done < <(find "$prefix" -type l -print0)

# .pc files: /usr becomes a path relative to the .pc file (${pcfiledir}),
# which pkg-config resolves wherever the prefix lies.
while IFS= read -r -d '' pc; do
  up=$(realpath -m --relative-to="$(dirname "$pc")" "$prefix")
  sed -i -E "s#(^|[=[:space:]]|-I|-L)/usr(/|\$|[[:space:]])#\\1\${pcfiledir}/$up\\2#g" "$pc"
done < <(find "$prefix" -name '*.pc' -print0)

# CMake config files are relative to their own location, except glog's path to
# its find modules (FindUnwind.cmake).
glog_modules=$prefix/lib/$arch/cmake/glog/glog-modules.cmake
[ -f "$glog_modules" ] || die "$glog_modules is missing: has libgoogle-glog-dev changed?"
# shellcheck disable=SC2016  # ${CMAKE_CURRENT_LIST_DIR} is CMake's, not the shell's
sed -i 's#^set (glog_MODULE_PATH "/usr/share/glog/cmake")#get_filename_component (glog_MODULE_PATH "${CMAKE_CURRENT_LIST_DIR}/../../../../share/glog/cmake" ABSOLUTE)#' "$glog_modules"

# protoc-twist and pkg-config-twist run protoc (and through it
# grpc_cpp_plugin) and pkgconf on the prefix's libraries, pkgconf looking only
# in the prefix, so that a build or a later reconfiguration needs no
# LD_LIBRARY_PATH.
cat >"$prefix/bin/protoc-twist" <<'EOF'
#!/bin/sh
# protoc with the libraries of the prefix it lies in (deploy/gpu/make-prefix.sh).
bin=$(dirname "$(readlink -f "$0")")
LD_LIBRARY_PATH="$bin/../lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
exec "$bin/protoc" "$@"
EOF
cat >"$prefix/bin/pkg-config-twist" <<'EOF'
#!/bin/sh
# pkg-config that runs on, and looks only in, the prefix it lies in
# (deploy/gpu/make-prefix.sh).
bin=$(dirname "$(readlink -f "$0")")
lib=$bin/../lib/x86_64-linux-gnu
LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
PKG_CONFIG_LIBDIR="$lib/pkgconfig:$bin/../share/pkgconfig"
export LD_LIBRARY_PATH PKG_CONFIG_LIBDIR
exec "$bin/pkgconf" "$@"
EOF
chmod 755 "$prefix/bin/protoc-twist" "$prefix/bin/pkg-config-twist"

# --- checks: no absolute /usr path left where a build reads it
leftover=$(grep -rlE '(^|[^[:alnum:]_{}])/usr(/|"|$)' "$prefix"/lib/$arch/pkgconfig "$prefix"/share/pkgconfig 2>/dev/null || true)
[ -z "$leftover" ] || die "absolute /usr paths left in .pc files: $leftover"
# In CMake files, only the "/usr move" blocks that compare against the
# original install location may name /usr (they never match elsewhere).
leftover=$(grep -rnE '"/usr(/|")' "$prefix"/lib/$arch/cmake "$prefix"/share/cmake "$prefix"/share/glog 2>/dev/null \
  | grep -vE '_realOrig|set\(_IMPORT_PREFIX "/usr/lib/'"$arch"'/cmake/[^"/]+"\)|set\(PACKAGE_PREFIX_DIR "/usr"\)' || true)
[ -z "$leftover" ] || die "absolute /usr paths left in CMake files:
$leftover"

# Every library a CMake config file names must be there.
absent=()
while IFS= read -r name; do
  [ -e "$prefix/lib/$arch/$name" ] || absent+=("$name")
done < <(grep -rhoE '/lib/x86_64-linux-gnu/[[:alnum:]_+.-]+\.(a|so[.0-9]*)"' "$prefix/lib/$arch/cmake" "$prefix/share/cmake" \
  | sed 's|.*/||; s|"$||' | sort -u)
[ ${#absent[@]} -eq 0 ] || die "CMake config files name libraries the prefix lacks: ${absent[*]}"

# Every DT_NEEDED of every ELF file must be in the prefix or in base_libs.
declare -A have=()
for lib in "${base_libs[@]}"; do have[$lib]=base; done
for f in "$prefix/lib/$arch"/*; do have[$(basename "$f")]=prefix; done
missing=()
newest_glibc=GLIBC_2.0
while IFS= read -r -d '' f; do
  [ "$(head -c4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
  while IFS= read -r needed; do
    [ -n "${have[$needed]:-}" ] || missing+=("${f#"$prefix"/} needs $needed")
  done < <(readelf -d --wide "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  v=$(readelf -V --wide "$f" | grep -o 'GLIBC_2\.[0-9]*' | sort -V | tail -1 || true)
  if [ -n "$v" ]; then newest_glibc=$(printf '%s\n%s\n' "$newest_glibc" "$v" | sort -V | tail -1); fi
done < <(find "$prefix" -type f -print0)
if [ ${#missing[@]} -gt 0 ]; then
  printf '  %s\n' "${missing[@]}" >&2
  die "${#missing[@]} shared-library dependencies are neither in the prefix nor in base_libs: add the Debian package that ships each (dpkg -S LIBRARY) to packages= in this script"
fi
echo "make-prefix: every DT_NEEDED resolves inside the prefix or to ${base_libs[*]}"
echo "make-prefix: newest glibc symbol version needed: $newest_glibc"

# The tools run, and the relocated .pc files resolve inside the prefix.
"$prefix/bin/protoc-twist" --version >/dev/null || die "the prefix's protoc does not run"
flags=$("$prefix/bin/pkg-config-twist" --cflags --libs cpp-httplib re2 grpc++ protobuf) \
  || die "pkg-config cannot resolve the prefix's .pc files"
case "$flags" in
  *-I/usr/*|*-L/usr/*) die "pkg-config flags point outside the prefix: $flags" ;;
esac

{
  echo "TwIST build prefix from Debian 12 packages (deploy/gpu/make-prefix.sh), made $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "newest glibc symbol version needed: $newest_glibc"
  echo "packages:"
  sort "$work/versions" | sed 's/^/  /'
} >"$prefix/PREFIX-INFO"

# --- archive
echo "make-prefix: compressing (xz -9)"
tar -C "$work" --owner=0 --group=0 --numeric-owner -cf - twist-prefix | xz -9 -T1 >"$archive.part"
mv "$archive.part" "$archive"
installed=$(du -sb "$prefix" | cut -f1)
size=$(stat -c %s "$archive")
awk -v a="$size" -v i="$installed" -v p="$archive" 'BEGIN {
  printf "make-prefix: wrote %s: %.1f MiB (%d bytes); installed %.1f MiB (%d bytes)\n", p, a / 1048576, a, i / 1048576, i }'
