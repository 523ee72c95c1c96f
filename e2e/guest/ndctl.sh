# shellcheck shell=sh
# shellcheck disable=SC2154 # /init sets $scenario, $mode and $kernel
# The ndctl scenario, on nfit_test's emulated dimms: a passphrase on every
# dimm of one interleaved region, lock and unlock, crypto-erase of each,
# overwrite of one, then activation of the region and a read from a
# namespace in it. However many dimm operations, the activation is the
# one place CPU caches are invalidated: once, for the region's range. A
# region is written back when it is disabled only if its dimms report a
# security state. A region bound while the probe of one of its dimms is
# under way waits for it; a dimm unlocked under a live region has that
# region invalidated. Activations are checked on the regions' driver links,
# not on ndctl's exit code ("enabled 0 regions" exits 0).

bus=nfit_test.0
nosec_bus=nfit_test.1

# regions_of_bus BUS: the pmem regions of BUS, as sysfs directories.
regions_of_bus() {
	for r in /sys/bus/nd/devices/region*; do
		[ "$(cat "$r/../provider" 2>/dev/null)" = "$1" ] || continue
		grep -q DEVTYPE=nd_pmem "$r/uevent" && readlink -f "$r"
	done
}

# dimms_of REGION: the nmem names of its mappings.
dimms_of() {
	i=0
	while [ "$i" -lt "$(cat "$1/mappings")" ]; do
		cut -d, -f1 "$1/mapping$i"
		i=$((i + 1))
	done
}

# test_dimm NMEM: nfit_test's control directory for the dimm.
test_dimm() {
	h=$(cat "/sys/bus/nd/devices/$1/nfit/handle")
	for t in "/sys/devices/platform/$bus/nfit_test_dimm/test_dimm"*; do
		[ "$(($(cat "$t/handle")))" -eq "$((h))" ] && echo "$t" && return
	done
}

security() { cat "/sys/bus/nd/devices/$1/security" 2>/dev/null || echo none; }

# expect_security CHECK NMEM STATE: the dimm's security state, read back
# from sysfs after an operation as ndctl's own test/security.sh does.
expect_security() {
	if [ "$(security "$2")" = "$3" ]; then pass "$1" "$2: $3"; else fail "$1" "$2: $(security "$2"), expected $3"; fi
}

# relock CHECK NMEM: the dimm's driver unbound, the dimm locked (read
# back, which also refreshes the kernel's copy of the state), trace_start,
# and its driver bound again, which unlocks it in its probe.
relock() {
	echo "$2" >/sys/bus/nd/drivers/nvdimm/unbind
	echo 1 >"$(test_dimm "$2")/lock_dimm"
	expect_security "$1: lock $2" "$2" locked
	trace_start
	echo "$2" >/sys/bus/nd/drivers/nvdimm/bind
}

# count_active REGION...: how many of them are active.
count_active() {
	_n=0
	for _r in "$@"; do
		active "$_r" && _n=$((_n + 1))
	done
	echo "$_n"
}

# expect_activation CHECK REGION: REGION was just enabled after a change
# to its dimms: active with one invalidation of its range where
# supported; in a guest active without one through the logged bypass,
# or refused with -ENXIO and a message naming its range.
expect_activation() {
	_r=$2
	_start=$(cat "$_r/resource") _size=$(cat "$_r/size")
	if supported; then
		if active "$_r"; then pass "$1 active" "${_r##*/}"; else fail "$1 active" "${_r##*/} has no driver: $(dmesg | tail -n 2 | tr '\n' ' ')"; fi
		expect_events "$1 invalidation" 1 "$_start" "$_size" 0
	elif nvdimm_bypass; then
		if active "$_r"; then pass "$1 active through the bypass" "${_r##*/}"; else fail "$1 active through the bypass" "${_r##*/} has no driver: $(dmesg | tail -n 2 | tr '\n' ' ')"; fi
		expect_events "$1 invalidation" 0
	else
		if active "$_r"; then fail "$1 refused" "${_r##*/} is active in a guest without the bypass"; else pass "$1 refused" "${_r##*/} has no driver"; fi
		expect_log "$1 refusal message" "${_r##*/}: not activated: CPU caches may hold stale data of $(pr_range "$_start" "$_size")"
		expect_events "$1 invalidation" 0
	fi
}

# expect_writebacks CHECK CHECK_REGION: since trace_start, each of the
# $nsec regions of $bus written back once ($name's range exactly once)
# where supported; in a guest none.
expect_writebacks() {
	if supported; then
		expect_events "$1" "$nsec"
		_n=$(count_events "$start" "$size")
		if [ "$_n" -eq 1 ]; then pass "$2" "its range once"; else fail "$2" "its range $_n times"; fi
	else
		expect_events "$1" 0
	fi
}

trace_start
if ! run load modprobe nfit_test; then
	return
fi
# ndctl waits for the bus's asynchronous probing to finish.
ndctl list -b "$bus" -R >/dev/null
ndctl list -b "$nosec_bus" -R >/dev/null
expect_events load 0
# The order of an invalidation, the erase and unlock commands sent to a
# dimm, and the probe of a region's namespaces (its seed included).
if kprobe e2e_erase nfit:intel_security_erase && kprobe e2e_unlock nfit:intel_security_unlock &&
	kprobe e2e_pmem_probe nd_pmem:nd_pmem_probe; then
	pass "order probes" "intel_security_erase, intel_security_unlock, nd_pmem_probe"
else
	fail "order probes" "kprobe events not accepted"
fi

region=
for r in $(regions_of_bus "$bus"); do
	if [ -z "$region" ] || [ "$(cat "$r/mappings")" -gt "$(cat "$region/mappings")" ]; then
		region=$r
	fi
done
if [ -z "$region" ]; then
	fail region "no pmem region on $bus"
	return
fi
name=${region##*/}
start=$(cat "$region/resource")
size=$(cat "$region/size")
dimms=$(dimms_of "$region" | tr '\n' ' ')
note "$name: $(hex "$size") bytes at $(hex "$start"), interleaved over $dimms"

# Dimms without security commands: disabling their regions writes back
# nothing, and enabling them again invalidates nothing.
nosec=$(regions_of_bus "$nosec_bus" | tr '\n' ' ')
# shellcheck disable=SC2086 # one argument per region
n=$(count_active $nosec)
nosec_dimms=$(for r in $nosec; do dimms_of "$r"; done | sort -u | tr '\n' ' ')
states=$(for d in $nosec_dimms; do security "$d"; done | sort -u | tr '\n' ' ')
if [ "$n" -ge 1 ] && [ "$states" = "none " ]; then
	pass "no-security regions" "$n active region(s) on $nosec_bus, dimms $nosec_dimms without a security state"
else
	fail "no-security regions" "$n active region(s) on $nosec_bus, dimms $nosec_dimms with security states: $states"
fi
trace_start
run "disable-regions $nosec_bus" ndctl disable-region -b "$nosec_bus" all
# shellcheck disable=SC2086 # one argument per region
if [ "$(count_active $nosec)" -eq 0 ]; then pass "disabled $nosec_bus" "$n region(s)"; else fail "disabled $nosec_bus" "still active: $(count_active $nosec)"; fi
expect_events "disable without security: $n region(s)" 0
trace_start
run "enable-regions $nosec_bus" ndctl enable-region -b "$nosec_bus" all
# shellcheck disable=SC2086 # one argument per region
if [ "$(count_active $nosec)" -eq "$n" ]; then pass "enabled $nosec_bus" "$n region(s)"; else fail "enabled $nosec_bus" "$(count_active $nosec) of $n active"; fi
expect_events "enable without security: $n region(s)" 0

# Dimms under security commands must not be in an active region. Each
# region of dimms with a security state writes back its range as it goes
# (where supported), so that no dirty line lands on media wiped later.
sec=$(regions_of_bus "$bus" | tr '\n' ' ')
# shellcheck disable=SC2086 # one argument per region
nsec=$(count_active $sec)
trace_start
run disable-regions ndctl disable-region -b "$bus" all
# shellcheck disable=SC2086 # one argument per region
if [ "$nsec" -ge 2 ] && [ "$(count_active $sec)" -eq 0 ]; then pass "disabled $bus" "$nsec region(s)"; else fail "disabled $bus" "$nsec region(s) were active, $(count_active $sec) still are"; fi
expect_writebacks "disable-writeback: $nsec region(s)" "disable-writeback $name"
# Where the write-back is not supported, the first such disable says so,
# with the range; the test bypass keeps it quiet.
if ! supported; then
	_n=$(dmesg | grep -c "disabled without a CPU cache write-back: not supported here")
	_want=1
	nvdimm_bypass && _want=0
	if [ "$_n" -eq "$_want" ]; then pass "disable-writeback warning" "$_n message(s)"; else fail "disable-writeback warning" "$_n message(s), expected $_want"; fi
fi

keyctl new_session >/dev/null
keyctl link @u @s
dd if=/dev/urandom bs=32 count=1 2>/dev/null | keyctl padd user nvdimm-master @u >/dev/null

trace_start
for d in $dimms; do
	run "setup-passphrase $d" ndctl setup-passphrase "$d" -k user:nvdimm-master
	expect_security "passphrase set on $d" "$d" unlocked
done
for d in $dimms; do
	run "disable-dimm $d" ndctl disable-dimm "$d"
	echo 1 >"$(test_dimm "$d")/lock_dimm"
	expect_security "lock $d" "$d" locked
	# Enabling a locked dimm unlocks it with the key from the keyring.
	run "enable-dimm $d" ndctl enable-dimm "$d"
	expect_security "unlock $d" "$d" unlocked
done
for d in $dimms; do
	run "crypto-erase $d" ndctl sanitize-dimm "$d" --crypto-erase
	expect_security "erased $d" "$d" disabled
done
expect_events "dimm-operations: passphrase, lock, unlock, erase" 0

# A dimm without a driver when its region activates holds no busy
# reference (its labels are erased: the region needs none of it); its
# erase is refused all the same while the region is active. Where
# supported only: in a guest the bypass's once-a-boot message belongs to
# the activation below. libnvdimm.activate_incoherent=1 is set for this
# activation: it changes nothing where caches can be invalidated.
last=${dimms% }
last=${last##* }
if supported; then
	run "no-reference: disable-dimm $last" ndctl disable-dimm "$last"
	trace_start
	echo 1 >/sys/module/libnvdimm/parameters/activate_incoherent
	ndctl enable-region "$name" >/dev/null 2>&1
	echo 0 >/sys/module/libnvdimm/parameters/activate_incoherent
	expect_events "no-reference: activation, the way out set" 1 "$start" "$size" 0
	if active "$region" && [ "$(cat "/sys/bus/nd/devices/$last/state")" = idle ]; then
		pass "no-reference: $name active" "$last has no driver and no busy reference"
		# Through sysfs: ndctl needs a key blob, which the erase above
		# discarded with the passphrase; the kernel refuses before it
		# looks at the key.
		refuse "no-reference: erase of $last refused" "Device or resource busy" \
			sh -c "echo 'erase 0' >/sys/bus/nd/devices/$last/security"
		expect_log "no-reference: refusal message" "$last: not erased or overwritten: $name is active; disable it first"
	else
		fail "no-reference: $name active" "driver $(active "$region" && echo bound || echo none), $last $(cat "/sys/bus/nd/devices/$last/state")"
	fi
	run "no-reference: disable $name" ndctl disable-region "$name"
	run "no-reference: enable-dimm $last" ndctl enable-dimm "$last"
fi

first=${dimms%% *}
# No overwrite starts while a region's probe is under way (security_store()
# waits for the bus's probes to go idle), so none can start after
# nd_region_activate() refused those in progress. Forced: the overwrite is
# written while the region's probe waits after that check (libnvdimm's
# activate_delay_ms, which only nfit_test's build of it has); it must wait
# for the activation and then be refused by the busy references. Through
# sysfs, with the zero key: the erases removed the passphrases. Where
# supported: in a guest the bypass's once-a-boot message belongs to the
# activation below, and the boot that refuses has no activation here.
if supported; then
	trace_start
	echo 3000 >/sys/module/libnvdimm/parameters/activate_delay_ms
	sh -c "echo $name >/sys/bus/nd/drivers/nd_region/bind" &
	bind=$!
	sleep 1
	refuse "overwrite of $first during the activation of $name" "Device or resource busy" \
		sh -c "echo 'overwrite 0' >/sys/bus/nd/devices/$first/security"
	if active "$region"; then pass "overwrite: $name activated first"; else fail "overwrite: $name activated first" "no driver"; fi
	if wait "$bind"; then pass "overwrite: bind of $name"; else fail "overwrite: bind of $name" "refused"; fi
	echo 0 >/sys/module/libnvdimm/parameters/activate_delay_ms
	# No dimm of it changed since the no-reference activation above.
	expect_events "overwrite: the activation, nothing to invalidate" 0
	run "overwrite: disable $name" ndctl disable-region "$name"
fi
trace_start
run "overwrite $first" ndctl sanitize-dimm "$first" --overwrite
# The erases wiped the namespace labels too: start them afresh.
# shellcheck disable=SC2086 # one argument per dimm
run init-labels ndctl init-labels -f $dimms
expect_events "dimm-operations: overwrite, init-labels" 0

# The activation: one invalidation of exactly the region's range. Until
# the kernel next polls the overwritten dimm (10 s after the command), the
# region refuses to activate with -EBUSY, before it would invalidate; the
# overwrite's completion marks the dimm again, and the activation after
# it still invalidates once.
trace_start
refused=$(dmesg | grep -c "probe of $name failed with error -16")
i=0
while [ "$i" -lt 60 ]; do
	ndctl enable-region "$name" >/dev/null 2>&1
	active "$region" && break
	# Refused: -EBUSY while the overwrite runs; in a guest without the
	# bypass, -ENXIO once it is done.
	dmesg | grep -q "$name: not activated" && break
	i=$((i + 1))
	sleep 1
done
n=$(($(dmesg | grep -c "probe of $name failed with error -16") - refused))
if [ "$n" -ge 1 ]; then
	pass "overwrite refusal $name" "$n -EBUSY refusal(s) while $first was overwritten"
else
	fail "overwrite refusal $name" "no -EBUSY refusal while $first was overwritten ($i attempt(s))"
fi
expect_activation "activation $name" "$region"
# The invalidation before the region's namespaces are probed.
supported && expect_order "activation $name order" "memregion e2e_pmem_probe*"
if ! supported && nvdimm_bypass; then
	expect_log "bypass $name" "$name: activated without CPU cache invalidation (CONFIG_NVDIMM_SECURITY_TEST)"
	# The bypass is logged once a boot, not per activation.
	if [ "$(dmesg | grep -c "activated without CPU cache invalidation")" -eq 1 ]; then
		pass "bypass logged once"
	else
		fail "bypass logged once" "$(dmesg | grep -c "activated without CPU cache invalidation") messages"
	fi
	expect_taint "bypass taints the kernel" 1
else
	expect_taint "no bypass, no taint" 0
fi
if ! active "$region"; then
	expect_log "refusal names the way out" "to activate it anyway, set libnvdimm.activate_incoherent=1 and enable it again"
	# Refused in a guest: every other region of the bus too.
	run enable-regions ndctl enable-region -b "$bus" all
	# shellcheck disable=SC2086 # one argument per region
	if [ "$(count_active $sec)" -eq 0 ]; then pass "all refused" "$nsec region(s)"; else fail "all refused" "$(count_active $sec) of $nsec active"; fi
	# A passphrase for the unlock below, set while the region is down.
	for race in $dimms; do :; done
	run "unlock under $name: setup-passphrase $race" ndctl setup-passphrase "$race" -k user:nvdimm-master
	# The administrator's way out: with libnvdimm.activate_incoherent=1
	# the region activates, with a warning that names its range.
	trace_start
	echo 1 >/sys/module/libnvdimm/parameters/activate_incoherent
	ndctl enable-region "$name" >/dev/null 2>&1
	if active "$region"; then pass "way out: $name active"; else fail "way out: $name active" "no driver: $(dmesg | tail -n 2 | tr '\n' ' ')"; fi
	expect_log "way out: the warning names the range" "$name: activated without CPU cache invalidation (libnvdimm.activate_incoherent=1): stale or erased data of $(pr_range "$start" "$size")"
	expect_events "way out: no invalidation" 0
	expect_taint "way out: no taint" 0
	# An unlock of a dimm of the active region: refused without the
	# parameter (the dimm stays locked), and with it done with a
	# warning that names the dimm and the region's range.
	echo 0 >/sys/module/libnvdimm/parameters/activate_incoherent
	relock "unlock under $name" "$race"
	expect_security "unlock under $name refused" "$race" locked
	expect_log "unlock under $name: refusal message" "$race: not unlocked: $name ($(pr_range "$start" "$size")"
	echo "$race" >/sys/bus/nd/drivers/nvdimm/unbind
	echo 1 >/sys/module/libnvdimm/parameters/activate_incoherent
	trace_start
	echo "$race" >/sys/bus/nd/drivers/nvdimm/bind
	expect_security "way out: unlock under $name" "$race" unlocked
	expect_log "way out: unlock warning" "$name: $race unlocked while active, without CPU cache invalidation (libnvdimm.activate_incoherent=1): stale data of $(pr_range "$start" "$size")"
	expect_events "way out: unlock, no invalidation" 0
	if active "$region"; then pass "way out: $name still active"; else fail "way out: $name still active" "no driver"; fi
	# The rest runs through the way out, the parameter set: the
	# namespace, the race, the teardown, a dimm locked at load and
	# frozen dimms, each region activating with its warning.
	echo 1 >/sys/module/libnvdimm/parameters/activate_incoherent
fi

trace_start
if run "create-namespace $name" ndctl create-namespace -r "$name" -m raw; then
	blockdev=$(find "$region"/namespace*/block/ -maxdepth 1 -name 'pmem*' 2>/dev/null | head -n 1)
	if [ -n "$blockdev" ] && dd if="/dev/${blockdev##*/}" of=/dev/null bs=64k count=16 2>/dev/null; then
		pass "read ${blockdev##*/}" "1 MiB"
	else
		fail "read namespace" "no readable pmem block device in $name"
	fi
fi
expect_events "create-namespace" 0
# Reactivating a region is the next activation: no operation since.
trace_start
run "disable-region $name" ndctl disable-region "$name"
if supported; then
	expect_events "disable-writeback $name" 1 "$start" "$size" 0
else
	expect_events "disable-writeback $name" 0
fi
trace_start
run "re-enable-region $name" ndctl enable-region "$name"
if active "$region"; then pass "re-activated $name"; else fail "re-activated $name" "no driver"; fi
expect_events "reactivation $name" 0

# $race: the region's last dimm, for the failures, the late unlock and the
# race below.
for race in $dimms; do :; done
# Failures, injected below cpu_cache_invalidate_memregion() (where it is
# called: where supported), which traces them. A disable whose write-back fails is logged,
# and its dimms are written back with all of memory before their next
# erase, which is refused if that fails too; an activation whose
# invalidation fails is refused; each goes through when retried.
if supported; then
	trace_start
	inject_failure
	run "failed write-back: disable $name" ndctl disable-region "$name"
	expect_injected "failed write-back: injected"
	expect_events "failed write-back: the failed call" 1 "$start" "$size" -5
	if active "$region"; then fail "failed write-back: $name disabled" "still has a driver"; else pass "failed write-back: $name disabled"; fi
	expect_log "failed write-back: message" "$name: CPU caches not written back as $(pr_range "$start" "$size")"
	expect_log "failed write-back: message says what follows" "was disabled: -5; its dimms will be written back with all of memory before an erase or overwrite"
	# Erases with the zero key through sysfs: the earlier erases left
	# $race without a passphrase.
	trace_start
	inject_failure
	refuse "failed write-back: erase of $race refused" "Input/output error" \
		sh -c "echo 'erase 0' >/sys/bus/nd/devices/$race/security"
	expect_injected "failed write-back: erase, injected"
	expect_log "failed write-back: refusal message" "$race: not erased or overwritten: the write-back of a region of it failed, and writing back all of memory failed: -5"
	expect_events "failed write-back: the failed call of all of memory" 1 0 -1 -5
	expect_order "failed write-back: no erase sent" "memregion"
	trace_start
	run "failed write-back: erase of $race" sh -c "echo 'erase 0' >/sys/bus/nd/devices/$race/security"
	expect_events "failed write-back: all of memory written back before the erase" 1 0 -1 0
	expect_order "failed write-back: erase order" "memregion e2e_erase"
	trace_start
	run "failed write-back: erase of $race again" sh -c "echo 'erase 0' >/sys/bus/nd/devices/$race/security"
	expect_events "failed write-back: nothing more to write back" 0
	expect_order "failed write-back: erase sent" "e2e_erase"
	# The erase marked $race: the next activation invalidates.
	trace_start
	inject_failure
	ndctl enable-region "$name" >/dev/null 2>&1
	expect_injected "failed invalidation: injected"
	if active "$region"; then fail "failed invalidation: $name refused" "active"; else pass "failed invalidation: $name refused" "no driver"; fi
	expect_log "failed invalidation: message" "$name: not activated: CPU cache invalidation of $(pr_range "$start" "$size")"
	expect_log "failed invalidation: message names the error" "failed: -5"
	expect_events "failed invalidation: the failed call" 1 "$start" "$size" -5
	expect_order "failed invalidation: no namespace probed" "memregion"
	trace_start
	ndctl enable-region "$name" >/dev/null 2>&1
	expect_activation "failed invalidation: retry" "$region"
	expect_order "failed invalidation: retry order" "memregion e2e_pmem_probe*"
	no_injection
fi

# A security command that fails (nfit_test's fail_cmd: the command runs,
# then -EIO is returned) may have changed the media: the dimm is marked
# all the same, and the next activation invalidates. One the dimm does
# not implement (-ENOTTY, sent with fail_cmd_code) reached nothing and
# marks nothing. Where supported: elsewhere no activation invalidates.
if supported; then
	run "failed erase: disable $name" ndctl disable-region "$name"
	t=$(test_dimm "$race")
	echo $((1 << 24)) >"$t/fail_cmd" # NVDIMM_INTEL_SECURE_ERASE
	refuse "failed erase of $race" "Input/output error" \
		sh -c "echo 'erase 0' >/sys/bus/nd/devices/$race/security"
	trace_start
	ndctl enable-region "$name" >/dev/null 2>&1
	expect_activation "failed erase: activation" "$region"
	run "-ENOTTY: disable $name" ndctl disable-region "$name"
	echo -25 >"$t/fail_cmd_code" # -ENOTTY
	refuse "-ENOTTY: erase of $race" "Inappropriate ioctl for device" \
		sh -c "echo 'erase 0' >/sys/bus/nd/devices/$race/security"
	echo 0 >"$t/fail_cmd"
	echo 0 >"$t/fail_cmd_code"
	trace_start
	ndctl enable-region "$name" >/dev/null 2>&1
	if active "$region"; then pass "-ENOTTY: $name active"; else fail "-ENOTTY: $name active" "no driver"; fi
	expect_events "-ENOTTY: nothing marked, nothing invalidated" 0
	# An erase with the master passphrase marks the dimm too.
	run "master: disable $name" ndctl disable-region "$name"
	run "master: setup-passphrase $race" ndctl setup-passphrase "$race" -m -k user:nvdimm-master
	run "master: erase $race" ndctl sanitize-dimm "$race" --crypto-erase -m
	trace_start
	ndctl enable-region "$name" >/dev/null 2>&1
	expect_activation "master: activation" "$region"
fi

# An unlock while a region of the dimm is live: its driver unbound and
# bound again while the region stays active and keeps its reference. The
# unlock invalidates the region's range itself (nvdimm_unlocked()). The
# boot that refuses ran this above, with and without the way out.
if supported || nvdimm_bypass; then
	# Without a passphrase (the erases above removed it, and ndctl sets
	# none under an active region): nfit_test unlocks it all the same.
	if active "$region"; then pass "late unlock: $name active"; else fail "late unlock: $name active" "no driver"; fi
	relock "late unlock" "$race"
	expect_security "late unlock: unlock $race" "$race" unlocked
	if supported; then
		expect_events "late unlock: invalidation by the unlock of $race" 1 "$start" "$size" 0
	else
		expect_events "late unlock: no invalidation" 0
		expect_log "late unlock: bypass" "dimm unlocked while active, without CPU cache invalidation (CONFIG_NVDIMM_SECURITY_TEST)"
	fi
	if active "$region"; then pass "late unlock: $name still active"; else fail "late unlock: $name still active" "no driver"; fi
fi

# A region bound while the probe of one of its dimms is under way, forced:
# the dimm's probe waits before its unlock (libnvdimm's unlock_delay_ms,
# which only nfit_test's build of it has). The region's probe must wait
# for the dimm's, and check after the unlock: its invalidation follows
# the unlock and precedes the probe of its namespaces. Then the same with
# the dimm's probe failing after its unlock (nfit_test's fail_cmd on the
# label area's size): the region's probe goes on, and fails on the dimm
# without a driver.
run "disable-region $name for the race" ndctl disable-region "$name"
[ "$(security "$race")" = unlocked ] ||
	run "race: setup-passphrase $race" ndctl setup-passphrase "$race" -k user:nvdimm-master
delay=/sys/module/libnvdimm/parameters/unlock_delay_ms
t=$(test_dimm "$race")
for how in race failed-probe; do
	run "$how: disable-dimm $race" ndctl disable-dimm "$race"
	echo 1 >"$t/lock_dimm"
	expect_security "$how: lock $race" "$race" locked
	[ "$how" = failed-probe ] && echo $((1 << 4)) >"$t/fail_cmd" # ND_CMD_GET_CONFIG_SIZE
	# Checked at about 2 s into a 5 s wait.
	echo 5000 >"$delay"
	trace_start
	echo "$race" >/sys/bus/nd/drivers/nvdimm/bind 2>/dev/null &
	dimm=$!
	sleep 1
	sh -c "echo $name >/sys/bus/nd/drivers/nd_region/bind" 2>/tmp/e2e-bind.err &
	bind=$!
	sleep 1
	# The driver link appears before the probe runs: the state of the
	# bind's own process tells whether the probe has returned (waiting
	# in wait_event(): D; exited: Z, or gone).
	case $(cut -d' ' -f3 "/proc/$bind/stat" 2>/dev/null) in
	D) state=waiting ;;
	*) state=returned ;;
	esac
	inside="bind $state, $(security "$race"), $(trace_events | grep -c .) invalidation(s)"
	if [ "$inside" = "bind waiting, locked, 0 invalidation(s)" ]; then
		pass "$how: $name waits for the probe of $race" "$inside"
	else
		fail "$how: $name waits for the probe of $race" "$inside"
	fi
	wait "$dimm"
	echo 0 >"$delay"
	echo 0 >"$t/fail_cmd"
	expect_security "$how: unlock $race" "$race" unlocked
	if [ "$how" = race ]; then
		if wait "$bind"; then pass "race: bind of $name"; else fail "race: bind of $name" "$(cat /tmp/e2e-bind.err)"; fi
		if active "$region"; then pass "race: $name active"; else fail "race: $name active" "no driver"; fi
		if supported; then
			expect_events "race: invalidation at the activation" 1 "$start" "$size" 0
			expect_order "race: unlock, invalidation, namespaces' probe" "e2e_unlock memregion e2e_pmem_probe*"
		else
			expect_events "race: no invalidation" 0
			expect_order "race: unlock, namespaces' probe" "e2e_unlock e2e_pmem_probe*"
		fi
		if [ -n "$(find "$region"/namespace*/block/ -maxdepth 1 -name 'pmem*' 2>/dev/null | head -n 1)" ]; then
			pass "race: namespace of $name"
		else
			fail "race: namespace of $name" "no pmem block device in $name"
		fi
		run "failed-probe: disable-region $name" ndctl disable-region "$name"
	else
		if wait "$bind"; then
			fail "failed-probe: bind of $name refused" "the bind succeeded"
		elif grep -q "No such device or address" /tmp/e2e-bind.err; then
			pass "failed-probe: bind of $name refused" "-ENXIO"
		else
			fail "failed-probe: bind of $name refused" "$(cat /tmp/e2e-bind.err)"
		fi
		expect_log "failed-probe: message" "$name: $race: is disabled, failing probe"
		expect_events "failed-probe: no invalidation" 0
		run "failed-probe: enable-dimm $race" ndctl enable-dimm "$race"
		trace_start
		ndctl enable-region "$name" >/dev/null 2>&1
		if active "$region"; then pass "failed-probe: $name active after"; else fail "failed-probe: $name active after" "no driver"; fi
		if supported; then
			expect_events "failed-probe: invalidation after" 1 "$start" "$size" 0
		else
			expect_events "failed-probe: no invalidation after" 0
		fi
	fi
done

# Other regions that share a dimm with it were changed too: each of them
# invalidates its own range once when it activates.
others=0
for r in $sec; do
	[ "$r" = "$region" ] && continue
	for d in $(dimms_of "$r"); do
		case " $dimms " in
		*" $d "*) others=$((others + 1)); break ;;
		esac
	done
done
if [ "$others" -ge 1 ]; then pass "other regions" "$others share dimms with $name"; else fail "other regions" "none shares a dimm with $name"; fi
trace_start
run enable-regions ndctl enable-region -b "$bus" all
# shellcheck disable=SC2086 # one argument per region
if [ "$(count_active $sec)" -eq "$nsec" ]; then pass "all active" "$nsec region(s)"; else fail "all active" "$(count_active $sec) of $nsec"; fi
if supported; then
	expect_events "activation of $others region(s) sharing dimms" "$others"
else
	expect_events "activation of $others region(s) sharing dimms" 0
	n=$(dmesg | grep -c "activated without CPU cache invalidation")
	if nvdimm_bypass; then
		if [ "$n" -eq 0 ]; then pass "bypass not logged again" "$others more activation(s)"; else fail "bypass not logged again" "$n more message(s)"; fi
	elif [ "$n" -eq "$others" ]; then
		pass "way out: a warning per region" "$n for $others activation(s)"
	else
		fail "way out: a warning per region" "$n message(s) for $others activation(s)"
	fi
fi

# The bus taken down with every region active (an NFIT or nfit_test
# unbind, an ACPI removal): nvdimm_delete() freezes each dimm first, and
# each region of dimms with a security state is still written back.
trace_start
echo "$bus" >/sys/bus/platform/drivers/nfit_test/unbind
if [ -e "$region" ]; then fail "teardown: $bus unbound" "$name still exists"; else pass "teardown: $bus unbound"; fi
expect_writebacks "teardown: write-back of $nsec active region(s)" "teardown: write-back of $name"
echo "$bus" >/sys/bus/platform/drivers/nfit_test/bind
ndctl list -b "$bus" -R >/dev/null
region=$(readlink -f "/sys/bus/nd/devices/$name")
sec=$(regions_of_bus "$bus" | tr '\n' ' ')

# A dimm locked when its bus appears, as after a power cycle: nfit_test's
# bus is taken down and probed again with the dimm locked (its emulated
# state outlives the bus). The unlock when the dimm's driver binds, with
# the key from the keyring, marks it; the first activation of each region
# that includes it invalidates once.
run "locked at load: disable-regions" ndctl disable-region -b "$bus" all
echo 1 >"$(test_dimm "$race")/lock_dimm"
trace_start
echo "$bus" >/sys/bus/platform/drivers/nfit_test/unbind
echo "$bus" >/sys/bus/platform/drivers/nfit_test/bind
ndctl list -b "$bus" -R >/dev/null
if [ "$(security "$race")" = unlocked ]; then pass "locked at load: unlock $race"; else fail "locked at load: unlock $race" "security: $(security "$race")"; fi
with=0
for r in $(regions_of_bus "$bus"); do
	case " $(dimms_of "$r" | tr '\n' ' ') " in
	*" $race "*)
		with=$((with + 1))
		if active "$r"; then pass "locked at load: ${r##*/} active"; else fail "locked at load: ${r##*/} active" "no driver: $(dmesg | grep "${r##*/}" | tail -n 1)"; fi
		;;
	esac
done
if [ "$with" -ge 1 ]; then pass "locked at load: regions" "$with include $race"; else fail "locked at load: regions" "none includes $race"; fi
if supported; then
	expect_events "locked at load: activations" "$with"
else
	expect_events "locked at load: activations" 0
fi

# Frozen dimms (until the next reset; last, since only reloading
# nfit_test thaws them): their erase and overwrite are refused, so a
# region of them activated while they are frozen is not written back
# when it is disabled.
run "frozen: disable-regions" ndctl disable-region -b "$bus" all
for d in $dimms; do
	# Freezing needs a passphrase; the erases removed all but $race's.
	[ "$d" = "$race" ] || run "frozen: setup-passphrase $d" ndctl setup-passphrase "$d" -k user:nvdimm-master
	run "frozen: freeze-security $d" ndctl freeze-security "$d"
	if [ "$(cat "/sys/bus/nd/devices/$d/frozen")" = 1 ]; then pass "frozen: $d frozen"; else fail "frozen: $d frozen" "frozen: $(cat "/sys/bus/nd/devices/$d/frozen")"; fi
done
refuse "frozen: erase of $last refused" "Input/output error" \
	sh -c "echo 'erase 0' >/sys/bus/nd/devices/$last/security"
run "frozen: enable $name" ndctl enable-region "$name"
trace_start
run "frozen: disable $name" ndctl disable-region "$name"
expect_events "frozen: disable of $name, no write-back" 0
echo 0 >/sys/module/libnvdimm/parameters/activate_incoherent

# nfit_test unloaded with regions active: refused, since every bound
# device of its buses holds a reference on the module (nvdimm_bus_probe()),
# so no unload tears down an active region behind the region driver.
run "unload: enable $name" ndctl enable-region "$name"
trace_start
refuse "unload: nfit_test refused while $name is active" "Resource temporarily unavailable" \
	modprobe -r nfit_test
if active "$region"; then pass "unload: $name still active"; else fail "unload: $name still active" "no driver"; fi
expect_events "unload: nothing written back" 0
