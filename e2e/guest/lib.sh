# shellcheck shell=sh
# shellcheck disable=SC2034,SC2154 # $event is for the others; /init sets $scenario
# Helpers for make e2e's scenarios; sourced by /init in the guest, which
# sets $scenario, $mode (on x86_64 "hidden" or "visible": the CPUID
# hypervisor bit; on arm64 "virt") and $kernel ("nvdimm-bypass":
# CONFIG_NVDIMM_SECURITY_TEST on and CONFIG_CXL_REGION_INVALIDATION_TEST
# off, "cxl-bypass": the reverse, "production": both off, and
# fail_function, which inject_failure uses; "agent", arm64's: both off,
# and KASAN).
# Every check prints one line the host counts:
#   E2E pass <scenario>/<check>[: detail]
#   E2E FAIL <scenario>/<check>: what went wrong
# on the console, for whoever reads the log, and on the results port
# (e2e.results=: ttyS1 on x86_64, a virtio console on arm64; /init sets
# it up), where printk never writes: the host
# reads the results there, and compares their number with the tally
# /init prints last ("E2E done N"), so that no result is lost unseen.

tracing=/sys/kernel/tracing
event=$tracing/events/memregion/cpu_cache_invalidate_memregion

results=${results_dev:?e2e.results= names the results port}
nresults=0
# say LINE: LINE on the console and on the results port.
say() {
	echo "$1"
	echo "$1" >"$results"
}
pass() {
	say "E2E pass $scenario/$1${2:+: $2}"
	nresults=$((nresults + 1))
}
fail() {
	say "E2E FAIL $scenario/$1${2:+: $2}"
	nresults=$((nresults + 1))
}
note() { say "E2E note $scenario: $*"; }

# hex NUMBER: as the trace event prints it (the kernel's %#llx: 0 is 0x0).
hex() { printf '0x%x' "$(($1))"; }
# pr_range START SIZE: how the kernel's %pr prints that range, up to its
# last byte: "[mem 0xSTART-0xEND".
pr_range() { printf '[mem %s-%s' "$(hex "$1")" "$(hex $(($1 + $2 - 1)))"; }

# run CHECK COMMAND...: COMMAND must succeed; its last lines if it doesn't.
run() {
	_check=$1
	shift
	_out=$("$@" 2>&1)
	_rc=$?
	if [ "$_rc" -eq 0 ]; then
		pass "$_check"
		return 0
	fi
	fail "$_check" "'$*' exited $_rc: $(echo "$_out" | tail -n 3 | tr '\n' ' ')"
	return 1
}

# refuse CHECK ERRNO_TEXT COMMAND...: COMMAND must fail, saying ERRNO_TEXT.
refuse() {
	_check=$1 _text=$2
	shift 2
	if _out=$("$@" 2>&1); then
		fail "$_check" "'$*' succeeded"
		return 1
	fi
	case $_out in
	*"$_text"*) pass "$_check" "refused: $_text" ;;
	*) fail "$_check" "'$*' failed without '$_text': $(echo "$_out" | tail -n 2 | tr '\n' ' ')" ;;
	esac
}

# coldplug: what udev would do, which the initramfs lacks: load the
# module of every device's modalias, until loading brings no new device.
coldplug() {
	_seen=
	while :; do
		_aliases=$(find /sys/devices -name modalias -exec cat {} + 2>/dev/null | sort -u)
		[ "$_aliases" = "$_seen" ] && return
		_seen=$_aliases
		# shellcheck disable=SC2086 # one argument per alias
		modprobe -a -q $_aliases 2>/dev/null
		sleep 1
	done
}

# trace_start: forget the invalidations and kernel messages so far.
trace_start() {
	: >"$tracing/trace"
	dmesg -c >/dev/null
}

# trace_events: the invalidations since trace_start, one per line, as
# "start=0xS len=0xL ret=R duration_ns=N".
trace_events() {
	sed -n 's/.*cpu_cache_invalidate_memregion: //p' "$tracing/trace"
}

# expect_events CHECK COUNT [START LEN RET]: exactly COUNT
# invalidations since trace_start, each of them (if given) for exactly
# that request and with that return value.
expect_events() {
	_check=$1 _count=$2
	shift 2
	_events=$(trace_events)
	_n=$(echo "$_events" | grep -c .)
	_shown=$(echo "$_events" | sed 's/ duration_ns=\([0-9]*\)/ (\1 ns)/' | paste -sd ';' -)
	if [ "$_n" -ne "$_count" ]; then
		fail "$_check" "$_n invalidations, expected $_count${_shown:+: $_shown}"
		return 1
	fi
	if [ $# -eq 3 ]; then
		_want="start=$(hex "$1") len=$(hex "$2") ret=$3 "
		if echo "$_events" | grep -v "^$_want" | grep -q .; then
			fail "$_check" "expected each to be '$_want', got: $_shown"
			return 1
		fi
	fi
	pass "$_check" "$_n invalidation(s)${_shown:+: $_shown}"
}

# expect_log CHECK TEXT: the kernel said TEXT since trace_start.
expect_log() {
	if dmesg | grep -qF -- "$2"; then
		pass "$1" "kernel: $(dmesg | grep -F -- "$2" | tail -n 1 | sed 's/^\[[^]]*\] //')"
	else
		fail "$1" "kernel did not say '$2'"
	fi
}

# supported: the kernel can invalidate CPU caches (hypervisor bit hidden).
supported() { [ "$mode" = hidden ]; }
# nvdimm_bypass, cxl_bypass: which test bypass the kernel has.
nvdimm_bypass() { [ "$kernel" = nvdimm-bypass ]; }
cxl_bypass() { [ "$kernel" = cxl-bypass ]; }

# active DEVICE_DIR: a driver is bound to the device (a region is active).
# Tools exit 0 when the kernel refused, so checks look here.
active() { [ -e "$1/driver" ]; }

# count_events START LEN: the invalidations since trace_start of exactly
# that range, with ret 0.
count_events() {
	trace_events | grep -c "^start=$(hex "$1") len=$(hex "$2") ret=0 "
}

# expect_taint CHECK WANT: TAINT_TEST ('N', bit 18), which the test
# bypasses set when they are used, is set (WANT=1) or not (WANT=0).
expect_taint() {
	_t=$(cat /proc/sys/kernel/tainted)
	if [ $(((_t >> 18) & 1)) -eq "$2" ]; then
		pass "$1" "tainted=$_t"
	else
		fail "$1" "tainted=$_t, TAINT_TEST expected $2"
	fi
}

# kprobe NAME [MOD:]FUNCTION [FETCHARGS]: record each call of FUNCTION in
# the trace as the kprobe event e2e/NAME.
kprobe() {
	echo "p:e2e/$1 $2${3:+ $3}" >>"$tracing/kprobe_events" &&
		echo 1 >"$tracing/events/e2e/$1/enable"
}

# trace_sequence: the order of what the trace holds since trace_start,
# one word per event, repeats folded: "memregion" for an invalidation,
# "release:NAME" for e2e_release (a device's driver released), the
# kprobe's name for any other e2e kprobe.
trace_sequence() {
	sed -n -e 's/.*: e2e_release: .* name="\([^"]*\)"$/release:\1/p' \
		-e 's/.*: \(e2e_[a-z_]*\): .*/\1/p' \
		-e 's/.*: cpu_cache_invalidate_memregion: .*/memregion/p' \
		"$tracing/trace" | uniq | paste -sd ' ' -
}

# expect_order CHECK PATTERN: trace_sequence matches the glob PATTERN.
expect_order() {
	_seq=$(trace_sequence)
	# shellcheck disable=SC2254 # PATTERN is a glob
	case $_seq in
	$2) pass "$1" "$_seq" ;;
	*) fail "$1" "order '$_seq', expected '$2'" ;;
	esac
}

# inject_failure: the next call of the implementation under
# cpu_cache_invalidate_memregion() fails with -EIO without running
# (fail_function), and no later one; the entry point traces it.
fail_function=/sys/kernel/debug/fail_function
inject_failure() {
	[ -d "$fail_function/arch_cpu_cache_invalidate_memregion" ] ||
		echo arch_cpu_cache_invalidate_memregion >"$fail_function/inject"
	# -EIO, as the u64 the attribute parses.
	echo 0xfffffffffffffffb >"$fail_function/arch_cpu_cache_invalidate_memregion/retval"
	echo 100 >"$fail_function/probability"
	echo 1 >"$fail_function/interval"
	echo 1 >"$fail_function/verbose"
	echo 1 >"$fail_function/times"
}

# no_injection: the implementation off fail_function's list.
no_injection() {
	echo "!arch_cpu_cache_invalidate_memregion" >"$fail_function/inject"
}

# expect_injected CHECK: the failure inject_failure armed was injected
# (fail_function counts its times down to 0).
expect_injected() {
	_left=$(cat "$fail_function/times" 2>/dev/null)
	if [ "$_left" = 0 ]; then pass "$1" "one failure injected"; else fail "$1" "fail_function times is '$_left', expected 0"; fi
}

# The CXL scenarios, on cxl_test's emulated topology.
devices=/sys/bus/cxl/devices

# root_decoder WAYS: a pmem-capable root decoder of cxl_test with WAYS
# targets (host bridges).
root_decoder() {
	for d in "$devices"/decoder0.*; do
		[ "$(cat "$d/cap_pmem" 2>/dev/null)" = 1 ] || continue
		[ "$(tr "," "\n" <"$d/target_list" | grep -c .)" -eq "$1" ] || continue
		echo "${d##*/}"
		return
	done
}

# memdev_below BRIDGE: a memdev below host bridge BRIDGE (a target_list
# entry), whose id cxl_test gives as the bridge's platform device number.
memdev_below() {
	for m in "$devices"/mem*; do
		case $(readlink -f "$m") in
		*/cxl_host_bridge."$1"/*)
			echo "${m##*/}"
			return
			;;
		esac
	done
}

# cxl_load: cxl_test and what udev would load after it, in the order it
# would: the ports must exist before cxl_mem probes the memdevs below
# them. False if cxl_test does not load.
cxl_load() {
	run load modprobe cxl_test || return 1
	for _m in cxl_acpi cxl_port cxl_mem cxl_pmem; do
		modprobe "$_m" || fail load "modprobe $_m"
		coldplug
	done
}

# cxl_order_probes: kprobe events for the order checks: e2e_release (a
# device's driver released, with its name), e2e_reset and e2e_commit
# (cxl_test's decoders reset and committed).
cxl_order_probes() {
	# shellcheck disable=SC2016 # a kprobe fetch argument, not a variable
	if kprobe e2e_release device_release_driver 'name=+0(+0($arg1)):string' &&
		kprobe e2e_reset cxl_test:mock_decoder_reset &&
		kprobe e2e_commit cxl_test:mock_decoder_commit; then
		pass "order probes" "device_release_driver, mock_decoder_reset, mock_decoder_commit"
	else
		fail "order probes" "kprobe events not accepted"
	fi
}
