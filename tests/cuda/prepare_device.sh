#!/usr/bin/env bash
# tests/cuda/prepare_device.sh — gather, on a machine with the Debian packages, what a bare GPU
# machine lacks for tests/cuda/device_check.sh into ONE folder (default <repo>/.device-deps,
# gitignored), to be carried along with the checkout:
#
#   eigen3/      Eigen's headers (Eigen/ only, no unsupported/) + its relocatable CMake package
#                (find_package(Eigen3) through Eigen3_DIR=eigen3/share/eigen3/cmake)
#   googletest/  GoogleTest's sources (Debian's /usr/src/googletest without gmock, tests,
#                samples), built inside the check's own build by add_subdirectory
#   benchmark/   Google Benchmark's sources: the Debian source package of the installed
#                libbenchmark-dev (Debian ships only a prebuilt shared library and headers),
#                fetched with `apt-get source` through a private apt state (the system's apt
#                configuration is not touched), Debian's patches applied; CMakeLists.txt,
#                cmake/, include/, src/, LICENSE only. When it cannot be fetched the folder is
#                left out and the check builds without bench_cuda_ops (reported as a skip).
#   MANIFEST.txt what is there, from where, which version
#
# The cuDNN and NVRTC libraries are not gathered: the GPU machine has them in PyTorch's wheels
# (device_check.sh finds them there).
#
#   bash tests/cuda/prepare_device.sh [--dest DIR] [--no-benchmark]
#
# Env: BENCHMARK_SOURCE = a folder holding Google Benchmark's sources, or a Debian .dsc, to use
# instead of `apt-get source` (offline). Idempotent: a part already there with the same version
# is kept. Prints the folder's size; fails when it exceeds 48 MiB (the device tool carries 64 MiB
# in all).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$ROOT/.device-deps"
WANT_BENCHMARK=1
while (($#)); do
  case "$1" in
    --dest) DEST="$2"; shift 2 ;;
    --no-benchmark) WANT_BENCHMARK=0; shift ;;
    -h|--help) sed -n '2,/^set /{/^#/p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "prepare_device: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
MANIFEST="$DEST/MANIFEST.txt"
say() { printf '[prepare_device] %s\n' "$*"; }
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
declare -a LINES=()

# ---- Eigen: headers + the relocatable CMake package (PACKAGE_PREFIX_DIR = cmake dir/../../..)
EIGEN_INC="${EIGEN_INCLUDE_DIR:-/usr/include/eigen3}"
EIGEN_CMAKE="${EIGEN_CMAKE_DIR:-/usr/share/eigen3/cmake}"
if [[ -f "$EIGEN_INC/Eigen/Core" && -f "$EIGEN_CMAKE/Eigen3Config.cmake" ]]; then
  ver="$(pkg_version libeigen3-dev)"
  ver="${ver:-$(grep -m1 -oE 'EIGEN3_VERSION_STRING "[^"]+' "$EIGEN_CMAKE/Eigen3Config.cmake" | cut -d'"' -f2)}"
  if [[ "$(cat "$DEST/eigen3/.version" 2>/dev/null)" != "$ver" ]]; then
    rm -rf "$DEST/eigen3"
    mkdir -p "$DEST/eigen3/include/eigen3" "$DEST/eigen3/share/eigen3/cmake"
    cp -a "$EIGEN_INC/Eigen" "$DEST/eigen3/include/eigen3/"
    cp -a "$EIGEN_INC/signature_of_eigen3_matrix_library" "$DEST/eigen3/include/eigen3/" 2>/dev/null || true
    cp -a "$EIGEN_CMAKE"/Eigen3*.cmake "$DEST/eigen3/share/eigen3/cmake/"
    cp /usr/share/doc/libeigen3-dev/copyright "$DEST/eigen3/COPYRIGHT" 2>/dev/null || true
    echo "$ver" > "$DEST/eigen3/.version"
  fi
  LINES+=("eigen3 $ver from $EIGEN_INC + $EIGEN_CMAKE ($(du -sh "$DEST/eigen3" | cut -f1))")
else
  rm -rf "$DEST/eigen3"
  LINES+=("eigen3 MISSING: no $EIGEN_INC/Eigen/Core or $EIGEN_CMAKE/Eigen3Config.cmake (apt-get install libeigen3-dev)")
fi

# ---- GoogleTest sources (the top-level CMakeLists sets GOOGLETEST_VERSION; gmock is not built)
GTEST_SRC="${GTEST_SOURCE_DIR:-/usr/src/googletest}"
if [[ -f "$GTEST_SRC/CMakeLists.txt" && -f "$GTEST_SRC/googletest/src/gtest-all.cc" ]]; then
  ver="$(pkg_version googletest)"
  ver="${ver:-$(grep -m1 -oE 'GOOGLETEST_VERSION [0-9.]+' "$GTEST_SRC/CMakeLists.txt" | cut -d' ' -f2)}"
  if [[ "$(cat "$DEST/googletest/.version" 2>/dev/null)" != "$ver" ]]; then
    rm -rf "$DEST/googletest"
    mkdir -p "$DEST/googletest/googletest"
    cp -a "$GTEST_SRC/CMakeLists.txt" "$DEST/googletest/"
    for d in CMakeLists.txt cmake include src; do
      cp -a "$GTEST_SRC/googletest/$d" "$DEST/googletest/googletest/"
    done
    cp /usr/share/doc/googletest/copyright "$DEST/googletest/COPYRIGHT" 2>/dev/null || true
    echo "$ver" > "$DEST/googletest/.version"
  fi
  LINES+=("googletest $ver sources from $GTEST_SRC ($(du -sh "$DEST/googletest" | cut -f1))")
else
  rm -rf "$DEST/googletest"
  LINES+=("googletest MISSING: no sources in $GTEST_SRC (apt-get install googletest)")
fi

# ---- Google Benchmark sources
# Copies the parts of an unpacked source tree $1 that a CMake build needs into DEST/benchmark.
install_benchmark_tree() {
  local src="$1" ver="$2"
  [[ -f "$src/CMakeLists.txt" && -f "$src/src/benchmark.cc" ]] || return 1
  rm -rf "$DEST/benchmark"
  mkdir -p "$DEST/benchmark"
  cp -a "$src/CMakeLists.txt" "$src/cmake" "$src/include" "$src/src" "$DEST/benchmark/"
  cp -a "$src/LICENSE" "$DEST/benchmark/" 2>/dev/null || true
  echo "$ver" > "$DEST/benchmark/.version"
}
# Unpacks a Debian source package (.dsc) with its patches applied into $2.
unpack_dsc() {
  local dsc="$1" out="$2"
  if command -v dpkg-source >/dev/null; then
    dpkg-source --no-check -x "$dsc" "$out" >/dev/null
  else  # the orig tarball + debian/patches/series by hand
    local dir; dir="$(dirname "$dsc")"
    mkdir -p "$out"
    tar -xzf "$(ls "$dir"/*.orig.tar.gz | head -1)" -C "$out" --strip-components=1
    tar -xJf "$(ls "$dir"/*.debian.tar.xz | head -1)" -C "$out"
    if [[ -f "$out/debian/patches/series" ]]; then
      while read -r p; do
        [[ -z "$p" || "$p" == \#* ]] || patch -s -d "$out" -p1 < "$out/debian/patches/$p"
      done < "$out/debian/patches/series"
    fi
  fi
}
# The system's active apt sources, as deb-src entries, into the private sources list $1.
write_src_list() {
  local list="$1" f
  : > "$list"
  if [[ -f /etc/apt/sources.list ]]; then
    sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' /etc/apt/sources.list >> "$list"
  fi
  for f in /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] && sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >> "$list"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] && cp "$f" "${list%/*}/sources.list.d/$(basename "$f")" \
      && sed -i 's/^Types:.*/Types: deb-src/' "${list%/*}/sources.list.d/$(basename "$f")"
  done
  return 0
}
if [[ $WANT_BENCHMARK == 1 ]]; then
  want="$(pkg_version libbenchmark-dev)"
  have="$(cat "$DEST/benchmark/.version" 2>/dev/null || true)"
  if [[ -n "${BENCHMARK_SOURCE:-}" ]]; then
    tmp="$(mktemp -d)"
    if [[ -d "$BENCHMARK_SOURCE" ]]; then
      install_benchmark_tree "$BENCHMARK_SOURCE" "from $BENCHMARK_SOURCE"
    else
      unpack_dsc "$BENCHMARK_SOURCE" "$tmp/src"
      install_benchmark_tree "$tmp/src" "$(basename "$BENCHMARK_SOURCE" .dsc)"
    fi
    rm -rf "$tmp"
    LINES+=("benchmark $(cat "$DEST/benchmark/.version") sources from BENCHMARK_SOURCE=$BENCHMARK_SOURCE")
  elif [[ -n "$have" && ( -z "$want" || "$have" == "$want" ) ]]; then
    LINES+=("benchmark $have sources (Debian source package, kept from an earlier run)")
  else
    tmp="$(mktemp -d)"
    mkdir -p "$tmp/etc/sources.list.d" "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/src"
    write_src_list "$tmp/etc/sources.list"
    APT=(-o Dir::Etc::SourceList="$tmp/etc/sources.list"
         -o Dir::Etc::SourceParts="$tmp/etc/sources.list.d"
         -o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache" -o Debug::NoLocking=1
         -o APT::Sandbox::User="$(id -un)")
    say "fetching the benchmark source package ${want:+$want }(apt-get source, private apt state in $tmp)"
    got=0
    # A source that fails to update (a third-party repository without deb-src) is not fatal.
    apt-get "${APT[@]}" -qq update > "$tmp/update.log" 2>&1 || true
    if (cd "$tmp/src" && apt-get "${APT[@]}" -qq source --download-only \
          "benchmark${want:+=$want}" > "$tmp/source.log" 2>&1); then
      dsc="$(ls "$tmp"/src/*.dsc 2>/dev/null | head -1)"
      if [[ -n "$dsc" ]] && unpack_dsc "$dsc" "$tmp/src/tree" \
         && install_benchmark_tree "$tmp/src/tree" "$(basename "$dsc" .dsc | sed 's/^benchmark_//')"; then
        got=1
      fi
    fi
    if [[ $got == 1 ]]; then
      LINES+=("benchmark $(cat "$DEST/benchmark/.version") sources (Debian source package, patches applied)")
    elif [[ -n "$have" ]]; then
      LINES+=("benchmark $have sources kept (fetching ${want:-the current version} failed: $(tail -1 "$tmp/source.log" 2>/dev/null))")
    else
      rm -rf "$DEST/benchmark"
      LINES+=("benchmark MISSING: apt-get source failed ($(tail -1 "$tmp/source.log" 2>/dev/null || tail -1 "$tmp/update.log")); the check skips bench_cuda_ops")
    fi
    rm -rf "$tmp"
  fi
else
  rm -rf "$DEST/benchmark"
  LINES+=("benchmark left out (--no-benchmark); the check skips bench_cuda_ops")
fi

size_kib=$(du -sk "$DEST" | cut -f1)
{
  echo "# redi device-check dependencies, made by tests/cuda/prepare_device.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '%s\n' "${LINES[@]}"
  echo "total $((size_kib / 1024)) MiB ($size_kib KiB)"
} > "$MANIFEST"
sed 's/^/[prepare_device] /' "$MANIFEST"
say "folder: $DEST ($(du -sh "$DEST" | cut -f1))"
if ((size_kib > 48 * 1024)); then
  echo "prepare_device: $DEST is over 48 MiB; the device tool carries 64 MiB in all" >&2
  exit 1
fi
