#!/usr/bin/env bash
# One-command set-up for a fresh Debian 12 machine (as root, or with sudo available):
# installs the Debian packages, builds in Release, then runs what was asked.
#   ./setup.sh          install + build
#   ./setup.sh demo     ... then transcribe the bundled sample with the bundled demo model
#   ./setup.sh test     ... then run every test: ctest + pytest, the C++ suites again under
#                       AddressSanitizer + UndefinedBehaviorSanitizer, and the fuzz corpus replay
#                       (WAVLLM_SKIP_SANITIZE=1 skips the last two for a quick local run)
# Idempotent: packages already installed are not fetched again; the build is incremental.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache
  libtorch-dev libopenblas0 libdnnl-dev ocl-icd-opencl-dev libsndfile1-dev libfftw3-dev libsoxr-dev libwebrtc-audio-processing-dev
  libcpp-httplib-dev nlohmann-json3-dev libgtest-dev pybind11-dev
  python3-dev python3-numpy python3-torch python3-pytest python3-sentencepiece python3-onnx
  python3-setuptools python3-wheel python3-build python3-venv python3-pip
  clang libclang-rt-14-dev
  espeak-ng sox ffmpeg nginx-light slurmctld slurmd slurm-client munge curl
)
# espeak-ng and sox make the long-recording tests' synthetic speech; ffmpeg reads their subtitles back;
# nginx balances two `wavllm serve` replicas in the server tests (each test starts its own on a loopback port),
# and curl is one of their clients;
# slurmctld, slurmd and munge make the one-node cluster of eval/tests/test_slurm.py (started by the test).
# Debian's LibTorch links the reference BLAS unless an optimised one is installed:
# libopenblas0 makes matrix products ~30x faster. oneDNN's CMake package asks for OpenCL's headers and
# loader (its GPU runtime), which Debian only recommends: ocl-icd-opencl-dev.

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

BUILD_DIR=${WAVLLM_BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPYTHON_EXECUTABLE=/usr/bin/python3 ${WAVLLM_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"

case "${1:-}" in
  "") ;;
  demo)
    "$BUILD_DIR/bin/wavllm" transcribe --model models/demo samples/plants.wav
    ;;
  test)
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
    PYTHONPATH="$BUILD_DIR/python" /usr/bin/python3 -m pytest -q tests/python eval/tests
    if [ "${WAVLLM_SKIP_SANITIZE:-0}" != 1 ]; then
      # Every suite again under ASan + UBSan (LibTorch itself is not instrumented; the
      # project's code is). The Python module is left out: it would need ASan preloaded.
      cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWAVLLM_BUILD_PYTHON=OFF \
        "-DWAVLLM_SANITIZE=address;undefined"
      cmake --build build-asan -j "$JOBS"
      ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --test-dir build-asan --output-on-failure -j "$JOBS"
      fuzz/run.sh --regress
    fi
    ;;
  *)
    echo "setup.sh: unknown command '$1' (expected nothing, demo or test)" >&2
    exit 2
    ;;
esac
