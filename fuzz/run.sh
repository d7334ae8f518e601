#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs them.
#   fuzz/run.sh [SECONDS] [TARGET...]   fuzz for SECONDS each (default 60); new inputs go to
#                                       fuzz/out/<target> (not committed), crashes to fuzz/out/crashes
#   fuzz/run.sh --regress               replay fuzz/corpus/<target> and fuzz/regressions/<target>
# The checkpoint unpickler (Python) has its own mutation fuzzer, fuzz_unpickler.py, run here too.
set -euo pipefail
cd "$(dirname "$0")"
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "fuzz/run.sh: needs $p (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
done
BUILD=../build-fuzz
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
ALL=(safetensors config audio manifest tokenizer openai_request unpickler)
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1

if [ "${1:-}" = "--regress" ]; then
  for t in safetensors config audio manifest tokenizer openai_request; do
    dirs=(corpus/$t)
    [ -d regressions/$t ] && dirs+=(regressions/$t)
    "$BUILD/fuzz_$t" -runs=0 "${dirs[@]}" 2>&1 | grep -E "^#|Done|ERROR" | tail -1
    echo "fuzz regress $t: ok"
  done
  /usr/bin/python3 fuzz_unpickler.py 5
  echo "fuzz regress unpickler: ok"
  exit 0
fi

SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
mkdir -p out/crashes
for t in "${TARGETS[@]}"; do
  mkdir -p "out/$t"
  log="out/$t.log"
  if [ "$t" = unpickler ]; then
    /usr/bin/python3 fuzz_unpickler.py "$SECONDS_EACH" >"$log" 2>&1 || { echo "fuzz $t: FAILED, see fuzz/$log"; tail -30 "$log"; exit 1; }
    echo "fuzz $t: $(tail -1 "$log")"
    continue
  fi
  "$BUILD/fuzz_$t" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="out/crashes/$t-" "out/$t" "corpus/$t" >"$log" 2>&1 || { echo "fuzz $t: FAILED, see fuzz/$log"; tail -30 "$log"; exit 1; }
  echo "fuzz $t: $(grep -E '^Done|stat::number_of_executed_units' "$log" | tail -1)"
done
