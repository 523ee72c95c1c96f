# shellcheck shell=sh
# shellcheck disable=SC2154 # /init sets $scenario, $mode and $kernel
# The agent scenario (arm64, e2e/arches/arm64.conf): CXL regions through
# the generic registry of platform cache agents, on cxl_test's emulated
# memdevs, with tools/testing/cache's cache_agent_test, which records
# every request. No cxl tool here: regions are made through sysfs, as
# cxl create-region makes them.
#
# 1. No agent: the commit marks the region, its activation is refused
#    with its range and the way out, nothing is invalidated.
# 2. The agent loaded: enabling the marked region again, with the agent
#    failing, is refused with the range (no done); enabled again, it
#    invalidates its exact range through the agent, once (wbinv, then
#    done), before the pmem region is registered; unbound and bound
#    again, nothing more.
# 3. Teardown of the bound region: one write-back of the range, after
#    the region driver was released and before the decoders are reset.
# 4. Commit: one invalidation of the range before the decoders are
#    committed; the activation then asks nothing more.
# 5. A failing agent at the commit: refused with the range, no decoder
#    committed, done not called; the retry commits.
# 6. The agent unloaded with the region active: bound again, the region
#    (committed while the agent was there) activates without an
#    invalidation; its teardown goes on without a write-back (a warning
#    names the range); committed again, its activation is refused:
#    has() is false.
# 7. The agent unloaded while a write-back it holds is in flight (done
#    delayed): the unload waits for it ("done" before "unregistered"),
#    and nothing calls into the module after it went; KASAN and lockdep
#    watch the whole boot.

agent_dir=/sys/kernel/debug/cache_agent_test
size=0x10000000

# agent_log: the agent's requests since agent_clear, ";"-separated.
agent_log() { paste -sd ';' "$agent_dir/requests"; }
agent_clear() { echo >"$agent_dir/requests"; }

# expect_agent CHECK WANT: the agent's requests are exactly WANT.
expect_agent() {
	_got=$(agent_log)
	if [ "$_got" = "$2" ]; then pass "$1" "agent: $_got"; else fail "$1" "agent: '$_got', expected '$2'"; fi
}

# request START LEN: how the agent logs a request of that range (%pa,
# then %#zx).
request() { printf 'wbinv 0x%016x %s' "$(($1))" "$(hex "$2")"; }

# endpoint_decoder MEMDEV: the first decoder of MEMDEV's endpoint port.
endpoint_decoder() {
	for _e in "$devices"/endpoint*; do
		[ "$(readlink -f "$_e/uport")" = "$(readlink -f "$devices/$1")" ] || continue
		for _d in "$_e"/decoder*; do
			echo "${_d##*/}"
			return
		done
	done
}

# sysfs CHECK VALUE FILE: write VALUE to FILE; a check only if it fails.
sysfs() {
	echo "$2" >"$3" 2>/tmp/sysfs.err && return 0
	fail "$1" "echo $2 >${3#/sys/bus/cxl/devices/}: $(cat /tmp/sysfs.err)"
	return 1
}

# make_region DECODER MEMDEV: a pmem region of $size on root decoder
# DECODER over MEMDEV's endpoint decoder $epd, configured as cxl
# create-region configures it, not committed; sets $region and $start.
make_region() {
	region=$(cat "$devices/$1/create_pmem_region")
	sysfs "create $region" "$region" "$devices/$1/create_pmem_region" || return 1
	_r=$devices/$region
	epd=$(endpoint_decoder "$2")
	sysfs "$region uuid" "$(cat /proc/sys/kernel/random/uuid)" "$_r/uuid" &&
		sysfs "$region granularity" "$(cat "$devices/$1/interleave_granularity")" "$_r/interleave_granularity" &&
		sysfs "$region ways" 1 "$_r/interleave_ways" &&
		sysfs "$region size" "$size" "$_r/size" &&
		sysfs "$epd mode" pmem "$devices/$epd/mode" &&
		sysfs "$epd dpa_size" "$size" "$devices/$epd/dpa_size" &&
		sysfs "$region target0" "$epd" "$_r/target0" || return 1
	start=$(cat "$_r/resource")
	pass "create $region" "$(hex "$size") bytes at $(hex "$start") over $epd of $2"
}

bind() { echo "$region" >/sys/bus/cxl/drivers/cxl_region/bind; }

# expect_active CHECK: binding $region activates it.
expect_active() {
	if bind 2>/tmp/bind.err && active "$devices/$region"; then pass "$1"; else fail "$1" "bind: $(cat /tmp/bind.err)"; fi
}

unbind() { echo "$region" >/sys/bus/cxl/drivers/cxl_region/unbind; }

# expect_refused CHECK: binding $region is refused for want of
# invalidation, with its range and the way out.
expect_refused() {
	trace_start
	refuse "$1" "No such device or address" bind || return
	expect_log "$1: message names the range" "$region: not activated: CPU caches may hold stale data of $(pr_range "$start" "$size")"
	expect_log "$1: message names the way out" "or no cache agent is registered); to activate it anyway, set cxl_core.activate_incoherent=1"
	expect_events "$1: nothing invalidated" 0
}

trace_start
cxl_load || return
decoder=
for _i in 1 2 3 4 5 6 7 8 9 10; do
	decoder=$(root_decoder 1)
	memdev=$(memdev_below "$(cat "$devices/$decoder/target_list" 2>/dev/null)")
	[ -n "$memdev" ] && [ -e "$devices/$memdev" ] && [ -n "$(endpoint_decoder "$memdev")" ] && break
	sleep 1
done
if [ -z "$decoder" ] || [ -z "$memdev" ]; then
	fail topology "no x1 pmem root decoder with a memdev ('$decoder' '$memdev')"
	return
fi
pass topology "x1 root decoder $decoder over $memdev"
cxl_order_probes
expect_events load 0

# 1. No agent.
if [ -e "$agent_dir" ]; then fail "no agent" "cache_agent_test is loaded"; else pass "no agent" "cache_agent_test not loaded"; fi
expect_taint "no agent: no test taint yet" 0
make_region "$decoder" "$memdev" || return
trace_start
sysfs "commit $region" 1 "$devices/$region/commit" || return
if [ "$(cat "$devices/$region/commit")" = 1 ]; then pass "commit $region without an agent" "committed, marked"; else fail "commit $region without an agent" "commit reads $(cat "$devices/$region/commit")"; fi
expect_events "commit $region without an agent: nothing invalidated" 0
expect_order "commit $region without an agent: order" "e2e_commit"
expect_refused "no agent: $region refused"

# 2. The agent registers; the marked region is enabled again, first
# with the agent failing.
trace_start
run "load the agent" modprobe cache_agent_test || return
expect_log "agent registered" "registered: CPU cache invalidation now reaches this agent"
expect_taint "agent taints the kernel" 1
kprobe e2e_pmem cxl_pmem:cxl_pmem_region_probe ||
	fail "pmem probe kprobe" "not accepted"
trace_start
agent_clear
echo 1 >"$agent_dir/fail"
refuse "agent fails: $region refused" "Input/output error" bind
if active "$devices/$region"; then fail "agent fails: $region not active" "has a driver"; else pass "agent fails: $region not active"; fi
expect_log "agent fails: refusal names the range" "$region: not activated: CPU cache invalidation of $(pr_range "$start" "$size")"
expect_agent "agent fails: no done for the failed request" "$(request "$start" "$size") failed"
expect_events "agent fails: one failed invalidation" 1 "$start" "$size" -5
trace_start
agent_clear
expect_active "agent: $region activated"
expect_agent "agent: one request of $region's range" "$(request "$start" "$size");done"
expect_events "agent: $region activation" 1 "$start" "$size" 0
expect_order "agent: invalidated before the pmem region probes" "memregion e2e_pmem*"
trace_start
agent_clear
unbind
expect_active "agent: $region bound again"
expect_agent "agent: bound again, nothing asked" ""

# 3. Teardown of the bound region: commit_store() releases the driver.
trace_start
agent_clear
sysfs "decommit $region" 0 "$devices/$region/commit"
if active "$devices/$region"; then fail "teardown: $region released" "still has a driver"; else pass "teardown: $region released"; fi
expect_agent "teardown: one write-back of $region's range" "$(request "$start" "$size");done"
expect_events "teardown: $region" 1 "$start" "$size" 0
# commit_store() releases the region's driver first (its children's are
# released within), then writes back, then resets the decoders.
expect_order "teardown: $region order" "release:$region *memregion e2e_reset"

# 4. Commit with the agent, then activate.
trace_start
agent_clear
sysfs "commit $region with the agent" 1 "$devices/$region/commit"
expect_agent "commit: one invalidation of $region's range" "$(request "$start" "$size");done"
expect_order "commit: $region invalidated before its decoders commit" "memregion e2e_commit"
agent_clear
expect_active "commit: $region activated"
expect_agent "commit: the activation asks nothing more" ""

# 5. A failing agent at the commit.
unbind
sysfs "decommit $region before the failure" 0 "$devices/$region/commit"
trace_start
agent_clear
echo 1 >"$agent_dir/fail"
refuse "failing agent: commit refused" "Input/output error" sh -c "echo 1 >$devices/$region/commit"
expect_log "failing agent: refusal names the range" "$region: not committed: CPU cache invalidation of $(pr_range "$start" "$size")"
expect_log "failing agent: the registry names the agent and the range" "agent_wbinv [cache_agent_test]: write-back and invalidation of $(printf '0x%016x' "$((start))")+$(hex "$size") failed: -5"
expect_agent "failing agent: no done for the failed request" "$(request "$start" "$size") failed"
expect_order "failing agent: no decoder committed" "memregion"
if [ "$(cat "$devices/$region/commit")" = 0 ]; then pass "failing agent: $region not committed"; else fail "failing agent: $region not committed" "commit reads 1"; fi
trace_start
agent_clear
sysfs "failing agent: retry" 1 "$devices/$region/commit"
expect_agent "failing agent: the retry's request" "$(request "$start" "$size");done"
expect_order "failing agent: the retry commits" "memregion e2e_commit"
expect_active "failing agent: $region activated after the retry"

# 6. The agent unloaded with the region active.
trace_start
run "unload the agent with $region active" rmmod cache_agent_test
expect_log "agent unregistered" "cache_agent_test: unregistered"
if [ -e "$agent_dir" ]; then fail "agent gone" "$agent_dir remains"; else pass "agent gone" "no $agent_dir"; fi
trace_start
unbind
expect_active "unloaded: $region, committed with the agent, activates again"
expect_events "unloaded: nothing to invalidate at that activation" 0
trace_start
sysfs "decommit $region without the agent" 0 "$devices/$region/commit"
expect_events "unloaded: teardown without a write-back" 0
expect_log "unloaded: teardown warning names the range" "decoders of $(pr_range "$start" "$size")"
expect_order "unloaded: decoders reset all the same" "release:$region *e2e_reset"
trace_start
sysfs "commit $region again without the agent" 1 "$devices/$region/commit"
expect_events "commit $region again without the agent: nothing invalidated" 0
expect_refused "has() false again: $region refused"

# 7. The agent unloaded while it holds a write-back: the registry's
# mutex makes the unregistration wait for the request's done.
run "load the agent again" modprobe cache_agent_test || return
expect_active "in flight: $region activated"
echo 2000 >"$agent_dir/delay_ms"
trace_start
agent_clear
echo 0 >"$devices/$region/commit" &
decommit=$!
# The write-back has reached the agent once its wbinv is logged.
for _i in 1 2 3 4 5 6 7 8 9 10; do
	grep -q '^wbinv' "$agent_dir/requests" && break
	sleep 0.2
done
run "in flight: unload the agent during the write-back" rmmod cache_agent_test
if wait "$decommit"; then pass "in flight: decommit of $region"; else fail "in flight: decommit of $region" "refused"; fi
_order=$(dmesg | grep -o -e 'cache_agent_test: done, after 2000 ms' -e 'cache_agent_test: unregistered' | paste -sd ';' -)
if [ "$_order" = "cache_agent_test: done, after 2000 ms;cache_agent_test: unregistered" ]; then
	pass "in flight: the unload waited for the request's done" "$_order"
else
	fail "in flight: the unload waited for the request's done" "kernel log order: '$_order'"
fi
expect_events "in flight: one write-back, completed" 1 "$start" "$size" 0
sysfs "detach $epd" "" "$devices/$region/target0"
sysfs "free $epd" 0 "$devices/$epd/dpa_size"
run "delete $region" sh -c "echo $region >$devices/$decoder/delete_region"
