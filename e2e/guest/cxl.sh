# shellcheck shell=sh
# shellcheck disable=SC2154 # /init sets $scenario, $mode and $kernel
# The cxl scenario, on cxl_test's emulated memdevs: create a pmem region,
# disable and enable it, reset and re-commit its decoders without the
# driver, destroy it, create it again, create a region interleaved over
# two host bridges, and detach an endpoint from a bound region (its
# target cleared, its cxl_mem unbound). Committing decoders invalidates
# the region's range once, before the commit; in a guest it marks the
# region instead. Resetting them writes the range back first, after the
# region driver was released (kprobes record the order): once per
# teardown where supported, and in a guest not at all but without
# refusing the teardown. In a guest, without
# CONFIG_CXL_REGION_INVALIDATION_TEST, a region refuses to activate.

regions_of() { find "$devices/$1/" -maxdepth 1 -name 'region*' | sed 's,.*/,,' | sort; }

# create_region DECODER MEMDEV...: after trace_start, cxl create-region
# over the memdevs; sets $rc, and $region to the new region (empty if
# none is left).
create_region() {
	_d=$1
	shift
	_before=$(regions_of "$_d" | tr '\n' ' ')
	trace_start
	cxl create-region -d "$_d" -w $# -m "$@" >/tmp/create.out 2>&1
	rc=$?
	region=
	for _r in $(regions_of "$_d"); do
		case " $_before " in *" $_r "*) ;; *) region=$_r ;; esac
	done
}

# create CHECK DECODER MEMDEV...: create a region over the memdevs and
# check its activation: one invalidation of its range; in a guest, an
# activation through the logged bypass, or a refusal after which cxl
# create-region tears the region down again, without a refusal of the
# teardown.
create() {
	_what=$1 _decoder=$2
	shift 2
	create_region "$_decoder" "$@"
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
	expect_log "$_what refusal names the way out" "to activate it anyway, set cxl_core.activate_incoherent=1 and enable it again"
	if [ -e "$devices/$region" ]; then
		fail "$_what teardown" "$region still exists after the refusal"
	else
		pass "$_what teardown" "$region destroyed by cxl create-region"
	fi
	if dmesg | grep -q "not written back"; then fail "$_what teardown write-back" "$(dmesg | grep -m1 "not written back")"; fi
	# Never activated, so nothing to write back, and nothing to warn of.
	if dmesg | grep -q "reset without a CPU cache write-back"; then
		fail "$_what teardown without a warning" "$(dmesg | grep -m1 "reset without a CPU cache write-back")"
	else
		pass "$_what teardown without a warning" "never activated"
	fi
	expect_events "$_what activation and teardown" 0
	return 1
}

# destroy CHECK: decommit the bound $region, then destroy it: one
# write-back of its range, after its driver was released and before its
# decoders are reset, where supported; none in a guest; never refused.
destroy() {
	trace_start
	run "$1: decommit" sh -c "echo 0 >$devices/$region/commit"
	if active "$devices/$region"; then fail "$1: released" "$region still has a driver"; else pass "$1: released" "$region"; fi
	if supported; then
		expect_events "$1 write-back" 1 "$start" "$size" 0
	fi
	expect_teardown_order "$1"
	# The events only: the kernel's messages stay for the caller.
	: >"$tracing/trace"
	run "$1" cxl destroy-region -f "$region"
	if [ -e "$devices/$region" ]; then fail "$1 gone" "$region still exists"; else pass "$1 gone" "$region"; fi
	expect_events "$1: nothing more to write back" 0
}

# expect_teardown_order CHECK: since trace_start, the region driver of
# $region was released (its children with it), then, where supported,
# its range written back, and then its decoders reset.
expect_teardown_order() {
	if supported; then
		expect_order "$1 order" "*release:$region *memregion e2e_reset*"
	else
		expect_events "$1 write-back" 0
		expect_order "$1 order" "*release:$region *e2e_reset*"
	fi
}

# detach CHECK HOW: detach an endpoint from the bound region $region by
# HOW ("target", clearing its target0, or "unbind", unbinding cxl_mem
# from $memdev): the region is released first, then written back, then
# its decoders reset; it ends up neither bound nor committed, and is
# destroyed without a further write-back.
detach() {
	trace_start
	case $2 in
	target) run "$1" sh -c "echo >$devices/$region/target0" ;;
	unbind) run "$1" sh -c "echo $memdev >/sys/bus/cxl/drivers/cxl_mem/unbind" ;;
	esac
	if active "$devices/$region" || [ "$(cat "$devices/$region/commit")" != 0 ]; then
		fail "$1 torn down" "$region: driver $(active "$devices/$region" && echo bound || echo none), commit $(cat "$devices/$region/commit")"
	else
		pass "$1 torn down" "$region: no driver, commit 0"
	fi
	if supported; then
		expect_events "$1 write-back" 1 "$start" "$size" 0
	fi
	expect_teardown_order "$1"
	if [ "$2" = unbind ]; then
		run "$1: bind $memdev again" sh -c "echo $memdev >/sys/bus/cxl/drivers/cxl_mem/bind"
		cxl list -M >/dev/null
	fi
	# cxl destroy-region refuses a region without targets: delete it.
	trace_start
	run "$1: delete $region" sh -c "echo $region >$devices/$decoder/delete_region"
	if [ -e "$devices/$region" ]; then fail "$1: $region gone" "still exists"; else pass "$1: $region gone"; fi
	expect_events "$1: destroy $region after the detach" 0
}

trace_start
cxl_load || return
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
cxl_order_probes
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
		expect_order "commit $region order" "memregion e2e_commit"
	else
		expect_events "commit $region" 0
		expect_order "commit $region order" "e2e_commit"
	fi
	# Reset again before any activation: nothing mapped the range since
	# the commit, so there is nothing to write back; commit once more.
	trace_start
	echo 0 >"$devices/$region/commit"
	expect_events "reset $region, not activated since the commit" 0
	echo 1 >"$devices/$region/commit"
	if supported; then
		expect_events "commit $region again" 1 "$start" "$size" 0
	else
		expect_events "commit $region again" 0
	fi
	trace_start
	run "enable $region after the commit" cxl enable-region "$region"
	if active "$devices/$region"; then pass "activated $region after the commit"; else fail "activated $region after the commit" "no driver"; fi
	expect_events "activation $region after the commit" 0

	# Failures, injected below cpu_cache_invalidate_memregion() (where it
	# is called: where supported), which traces them. A decommit whose write-back fails
	# leaves the decoders committed, a commit whose invalidation fails
	# commits nothing; each goes through when retried.
	if supported; then
		trace_start
		inject_failure
		refuse "failed write-back: decommit $region refused" "Input/output error" \
			sh -c "echo 0 >$devices/$region/commit"
		expect_injected "failed write-back: injected"
		expect_events "failed write-back: the failed call" 1 "$start" "$size" -5
		if [ "$(cat "$devices/$region/commit")" = 1 ] && ! active "$devices/$region"; then
			pass "failed write-back: $region released, still committed"
		else
			fail "failed write-back: $region released, still committed" "commit $(cat "$devices/$region/commit"), driver $(active "$devices/$region" && echo bound || echo none)"
		fi
		expect_log "failed write-back: message" "$region: CPU caches not written back for $(pr_range "$start" "$size")"
		expect_log "failed write-back: message says what to do" ": -5; its decoders stay committed: write 0 to commit to retry"
		_seq=$(trace_sequence)
		case $_seq in
		*e2e_reset*) fail "failed write-back: no decoder reset" "$_seq" ;;
		*"release:$region"*) pass "failed write-back: no decoder reset" "$_seq" ;;
		*) fail "failed write-back: no decoder reset" "$region not released: '$_seq'" ;;
		esac
		trace_start
		run "failed write-back: decommit $region again" sh -c "echo 0 >$devices/$region/commit"
		expect_events "failed write-back: retried" 1 "$start" "$size" 0
		expect_teardown_order "failed write-back: retried"
		trace_start
		inject_failure
		refuse "failed invalidation: commit $region refused" "Input/output error" \
			sh -c "echo 1 >$devices/$region/commit"
		expect_injected "failed invalidation: injected"
		if [ "$(cat "$devices/$region/commit")" = 0 ]; then pass "failed invalidation: $region not committed"; else fail "failed invalidation: $region not committed" "commit $(cat "$devices/$region/commit")"; fi
		expect_log "failed invalidation: message" "$region: not committed: CPU cache invalidation of $(pr_range "$start" "$size")"
		expect_events "failed invalidation: the failed call" 1 "$start" "$size" -5
		expect_order "failed invalidation: no decoder committed" "memregion"
		trace_start
		run "failed invalidation: commit $region again" sh -c "echo 1 >$devices/$region/commit"
		expect_events "failed invalidation: retried" 1 "$start" "$size" 0
		expect_order "failed invalidation: retry order" "memregion e2e_commit"
		no_injection
		run "failed invalidation: enable $region" cxl enable-region "$region"
		if active "$devices/$region"; then pass "failed invalidation: $region active"; else fail "failed invalidation: $region active" "no driver"; fi
	fi

	destroy "destroy $region"
	create create-again "$decoder" "$memdev" && destroy "destroy $region"
fi

# shellcheck disable=SC2086 # one argument per memdev
create create-x2 "$decoder2" $memdevs2 && destroy "destroy $region"

# An endpoint that goes away from a bound region: its target cleared,
# and its memdev's cxl_mem unbound.
create create-detach "$decoder" "$memdev" && detach "detach target0 of $region" target
create create-unbind "$decoder" "$memdev" && detach "unbind cxl_mem from $memdev under $region" unbind

# The administrator's way out where caches cannot be invalidated:
# cxl_core.activate_incoherent=1 activates the region with a warning
# that names its range. Where they can, or under the test bypass, it
# changes nothing.
echo 1 >/sys/module/cxl_core/parameters/activate_incoherent
if supported || cxl_bypass; then
	create "way out set" "$decoder" "$memdev" && destroy "destroy $region"
else
	create_region "$decoder" "$memdev"
	if [ -n "$region" ] && active "$devices/$region"; then
		start=$(cat "$devices/$region/resource")
		size=$(cat "$devices/$region/size")
		pass "way out: $region active"
		expect_log "way out: the warning names the range" "$region: activated without CPU cache invalidation (cxl_core.activate_incoherent=1): stale data of $(pr_range "$start" "$size")"
		expect_events "way out: no invalidation" 0
		expect_taint "way out: no taint" 0
		destroy "way out: destroy $region"
		# The teardown without a write-back is said, once a boot.
		expect_log "way out: teardown warning" "$region: decoders of [mem "
		expect_log "way out: teardown warning reason" "reset without a CPU cache write-back: not supported here"
	else
		fail "way out: active" "exit $rc: $(tail -n 3 /tmp/create.out | tr '\n' ' ')"
	fi
fi
echo 0 >/sys/module/cxl_core/parameters/activate_incoherent
