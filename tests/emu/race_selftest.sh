#!/bin/sh
# The race check's own test (make test-race): each racy kernel of tests/emu/selftest.cu must be
# reported by ThreadSanitizer and each synchronised twin must not. Usage: race_selftest.sh BINARY
bin=${1:?usage: race_selftest.sh build-race/emu_selftest}
fail=0
check() {  # CASE EXPECTED(race|clean)
    TSAN_OPTIONS="exitcode=66 halt_on_error=1" "$bin" "$1" >/dev/null 2>"$bin.$1.log"
    rc=$?
    case "$rc" in 66) got=race ;; 0) got=clean ;; *) got="error (exit $rc)" ;; esac
    if [ "$got" = "$2" ]; then echo "race self-test: $1: $got, as expected"
    else echo "race self-test: $1: $got, expected $2 (log: $bin.$1.log)"; fail=1; fi
}
check smem-no-barrier race
check smem-barrier clean
check blocks-overlap race
check blocks-disjoint clean
check atomics clean
check last-block-no-fence race
check last-block-fence clean
check warp-shuffle race
check warp-syncwarp clean
check kernel-order clean
check pdl-read-before-wait race
check pdl-read-after-wait clean
[ $fail = 0 ] && echo "race self-test: all cases as expected"
exit $fail
