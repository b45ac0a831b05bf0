#!/usr/bin/env bash
# Every test, in the order a failure is cheapest to read: unit tests (-Werror build), the same unit
# tests under AddressSanitizer + UndefinedBehaviorSanitizer, integration tests against every
# interpreter on the machine (pytest), and the readers' fuzzer. Ends with one line
# "N passed, N failed, N skipped" summed over all of them; exits non-zero if anything failed.
# Expects scripts/setup.sh to have installed the dependencies and built build/.
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
mkdir -p build/test-results
rm -f build/test-results/*.xml
status=0

echo "== unit tests (build/, -Werror)"
meson test -C build --suite unit --print-errorlogs || status=1
cp build/meson-logs/testlog.junit.xml build/test-results/unit.xml 2>/dev/null

echo "== unit tests under ASan+UBSan (build-asan/)"
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fno-sanitize-recover=all >/dev/null
fi
if ninja -C build-asan >/dev/null; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --suite unit --print-errorlogs || status=1
  sed 's/testsuite name="/testsuite name="asan-/' build-asan/meson-logs/testlog.junit.xml \
    > build/test-results/unit-asan.xml 2>/dev/null
else
  echo "ASan build failed"; status=1
  echo '<testsuites><testsuite name="asan-build"><testcase name="asan-build"><failure/></testcase></testsuite></testsuites>' > build/test-results/asan-build.xml
fi

echo "== integration tests (pytest, every interpreter found)"
PYTRACE_BIN="$PWD/build/pytrace" PYTRACE_ASAN_BIN="$PWD/build-asan/pytrace" \
  /usr/bin/python3 -m pytest tests/integration -q -rs -p no:cacheprovider \
  --junitxml=build/test-results/integration.xml || status=1

echo "== fuzzing the readers (${FUZZ_SECONDS}s per target)"
bash scripts/fuzz.sh "$FUZZ_SECONDS" build/test-results/fuzz.xml || status=1

/usr/bin/python3 scripts/junit_summary.py build/test-results/*.xml || status=1
exit $status
