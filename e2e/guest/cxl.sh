# shellcheck shell=sh
# shellcheck disable=SC2154 # /init sets $scenario, $mode and $kernel
# The cxl scenario, on cxl_test's emulated memdevs: create a pmem region,
# disable and enable it, reset and re-commit its decoders without the
# driver, destroy it, create it again, and create a region interleaved
# over two host bridges. Committing decoders invalidates the region's
# range once, before the commit; in a guest it marks the region instead. Resetting them writes the range
# back first: once per destroy where supported, and in a guest not at all
# but without refusing the teardown. In a guest, without
# CONFIG_CXL_REGION_INVALIDATION_TEST, a region refuses to activate.

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

regions_of() { find "$devices/$1/" -maxdepth 1 -name 'region*' | sed 's,.*/,,' | sort; }

# create CHECK DECODER MEMDEV...: create a region over the memdevs and
# check its activation: one invalidation of its range; in a guest, an
# activation through the logged bypass, or a refusal after which cxl
# create-region tears the region down again, without a refusal of the
# teardown.
create() {
	_what=$1 _decoder=$2
	shift 2
	before=$(regions_of "$_decoder" | tr '\n' ' ')
	trace_start
	cxl create-region -d "$_decoder" -w $# -m "$@" >/tmp/create.out 2>&1
	rc=$?
	region=
	for r in $(regions_of "$_decoder"); do
		case " $before " in *" $r "*) ;; *) region=$r ;; esac
	done
	if supported || cxl_bypass; then
		if [ -z "$region" ] || ! active "$devices/$region"; then
			fail "$_what active" "exit $rc: $(tail -n 3 /tmp/create.out | tr '\n' ' ')"
			return 1
		fi
		start=$(cat "$devices/$region/resource")
		size=$(cat "$devices/$region/size")
		ways=$(cat "$devices/$region/interleave_ways")
		pass "$_what active" "$region, x$ways, $(hex "$size") bytes at $(hex "$start")"
		if supported; then
			expect_events "$_what activation" 1 "$start" "$size" 0
		else
			expect_events "$_what activation" 0
			# The bypass is logged once a boot, not per activation.
			_n=$(dmesg | grep -c "activated without CPU cache invalidation (CONFIG_CXL_REGION_INVALIDATION_TEST)")
			_want=0
			[ "$_what" = create ] && _want=1
			if [ "$_n" -eq "$_want" ]; then pass "$_what bypass logged $_want time(s)"; else fail "$_what bypass logged $_want time(s)" "$_n message(s)"; fi
			expect_taint "$_what bypass taints the kernel" 1
		fi
		return
	fi
	if [ -n "$region" ] && active "$devices/$region"; then
		fail "$_what refused" "$region is active in a guest"
		return 1
	fi
	refused=$(grep -o 'region[0-9]*: failed to enable: .*' /tmp/create.out | head -n 1)
	if [ -z "$refused" ]; then
		fail "$_what refused" "exit $rc: $(tail -n 3 /tmp/create.out | tr '\n' ' ')"
		return 1
	fi
	region=${refused%%:*}
	pass "$_what refused" "cxl create-region: $refused"
	expect_log "$_what refusal message" "$region: not activated: CPU caches may hold stale data of"
	if [ -e "$devices/$region" ]; then
		fail "$_what teardown" "$region still exists after the refusal"
	else
		pass "$_what teardown" "$region destroyed by cxl create-region"
	fi
	if dmesg | grep -q "not written back"; then fail "$_what teardown write-back" "$(dmesg | grep -m1 "not written back")"; fi
	# The teardown without a write-back is said, once a boot.
	if [ "$_what" = create ]; then
		expect_log "$_what teardown warning" "$region: decoders of [mem "
		expect_log "$_what teardown warning reason" "reset without a CPU cache write-back: not supported here"
	fi
	expect_events "$_what activation and teardown" 0
	return 1
}

# destroy CHECK: destroy $region: one write-back of its range before its
# decoders are reset where supported, none in a guest, and never refused.
destroy() {
	trace_start
	run "$1" cxl destroy-region -f "$region"
	if [ -e "$devices/$region" ]; then fail "$1 gone" "$region still exists"; else pass "$1 gone" "$region"; fi
	if supported; then
		expect_events "$1 write-back" 1 "$start" "$size" 0
	else
		expect_events "$1 write-back" 0
	fi
}

trace_start
# What udev would load, in the order it would: the ports must exist
# before cxl_mem probes the memdevs below them.
if ! run load modprobe cxl_test; then
	return
fi
for m in cxl_acpi cxl_port cxl_mem cxl_pmem; do
	modprobe "$m" || fail load "modprobe $m"
	coldplug
done
# The emulated topology probes asynchronously; cxl list waits for it.
cxl list -M >/dev/null
decoder=$(root_decoder 1)
memdev=$(memdev_below "$(cat "$devices/$decoder/target_list" 2>/dev/null)")
decoder2=$(root_decoder 2)
memdevs2=
for b in $(tr ',' ' ' <"$devices/$decoder2/target_list" 2>/dev/null); do
	memdevs2="$memdevs2 $(memdev_below "$b")"
done
# shellcheck disable=SC2086 # one word per memdev
set -- $memdevs2
if [ -z "$decoder" ] || [ -z "$memdev" ] || [ -z "$decoder2" ] || [ $# -ne 2 ]; then
	fail topology "no x1 and x2 pmem root decoders with memdevs (x1 '$decoder' '$memdev', x2 '$decoder2' '$memdevs2')"
	return
fi
pass topology "x1 root decoder $decoder over $memdev, x2 $decoder2 over$memdevs2"
expect_events load 0

if create create "$decoder" "$memdev"; then
	# Disable and enable: nothing was committed since the activation.
	trace_start
	run "disable $region" cxl disable-region "$region"
	if active "$devices/$region"; then fail "disabled $region" "still has a driver"; else pass "disabled $region"; fi
	run "enable $region" cxl enable-region "$region"
	if active "$devices/$region"; then pass "re-enabled $region"; else fail "re-enabled $region" "no driver"; fi
	expect_events "disable/enable $region" 0

	# Reset and commit again without the driver: the reset writes back,
	# the commit invalidates first (where supported; in a guest it only
	# marks, and the activation is refused or bypassed), and the
	# activation after it invalidates nothing more.
	trace_start
	run "disable $region for the re-commit" cxl disable-region "$region"
	echo 0 >"$devices/$region/commit"
	if supported; then
		expect_events "reset $region" 1 "$start" "$size" 0
	else
		expect_events "reset $region" 0
	fi
	trace_start
	echo 1 >"$devices/$region/commit"
	if [ "$(cat "$devices/$region/commit")" = 1 ] && ! active "$devices/$region"; then
		pass "commit without probe $region"
	else
		fail "commit without probe $region" "commit $(cat "$devices/$region/commit"), driver $(active "$devices/$region" && echo bound || echo none)"
	fi
	if supported; then
		expect_events "commit $region" 1 "$start" "$size" 0
	else
		expect_events "commit $region" 0
	fi
	trace_start
	run "enable $region after the commit" cxl enable-region "$region"
	if active "$devices/$region"; then pass "activated $region after the commit"; else fail "activated $region after the commit" "no driver"; fi
	expect_events "activation $region after the commit" 0

	destroy "destroy $region"
	create create-again "$decoder" "$memdev" && destroy "destroy $region"
fi

# shellcheck disable=SC2086 # one argument per memdev
create create-x2 "$decoder2" $memdevs2 && destroy "destroy $region"
