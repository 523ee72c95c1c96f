# shellcheck shell=sh
# shellcheck disable=SC2154 # /init sets $scenario and $mode
# The namespace scenario: cpu_cache_invalidate_memregion() is for modules
# that import the DEVMEM namespace only, and bad requests flush nothing.
# /e2e/noimport/devmem_ns_test.ko was built without the import (modpost
# refused it; run-e2e.sh checked that and built it as a warning), and
# /e2e/import/devmem_ns_test.ko with it.

# load CHECK ARGS...: load the module that imports DEVMEM, then unload it.
load() {
	_check=$1
	shift
	run "$_check" insmod /e2e/import/devmem_ns_test.ko "$@" && rmmod devmem_ns_test
}

trace_start
refuse "no import: load refused" "Invalid argument" insmod /e2e/noimport/devmem_ns_test.ko
expect_log "no import: namespace error" "from namespace DEVMEM, but does not import it"
expect_events "no import: nothing called" 0

trace_start
if [ "$mode" = hidden ]; then
	load "import: loads" start=0x100000000 len=0x200000
	expect_log "import: call succeeds" "cpu_cache_invalidate_memregion(0x100000000, 0x200000) = 0"
	expect_events "import: one call" 1 0x100000000 0x200000 0
	# A range whose last byte is the top of phys_addr_t
	# is valid; the same range one byte higher is not (below).
	trace_start
	load "import: top of memory" start=0xfffffffffffff000 len=0x1000
	expect_events "import: range ending at the top" 1 0xfffffffffffff000 0x1000 0
else
	load "import: loads"
	expect_log "import: unsupported" "not supported: cpu_cache_has_invalidate_memregion() is false"
	expect_events "import: not called" 0
fi

# bad NAME START LEN: refused with -EINVAL, whatever the mode, with one
# event that says so and no invalidation.
bad() {
	trace_start
	load "bad input $1: load" require_support=0 start="$2" len="$3"
	expect_log "bad input $1: -EINVAL" ") = -22"
	expect_events "bad input $1: refused, nothing flushed" 1 "$2" "$3" -22
}
bad "len 0" 0x100000000 0
bad "len 0 at 0" 0 0
bad "last byte one past top" 0xfffffffffffff001 0x1000
bad "end past top" 0xfffffffffffff000 0x2000
