# shellcheck shell=sh
# shellcheck disable=SC2154 # /init sets $scenario and $mode
# The ndctl scenario, on nfit_test's emulated dimms: a passphrase on every
# dimm of one interleaved region, lock and unlock, crypto-erase of each,
# overwrite of one, then activation of the region and a read from a
# namespace in it. However many dimm operations, the activation is the
# one place CPU caches are invalidated: once, for the region's range.

bus=nfit_test.0

# region_of_bus: the pmem regions of $bus, as sysfs directories.
regions_of_bus() {
	for r in /sys/bus/nd/devices/region*; do
		[ "$(cat "$r/../provider" 2>/dev/null)" = "$bus" ] || continue
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

security() { cat "/sys/bus/nd/devices/$1/security"; }

trace_start
if ! run load modprobe nfit_test; then
	return
fi
# ndctl waits for the bus's asynchronous probing to finish.
ndctl list -b "$bus" -R >/dev/null
expect_events load 0

region=
for r in $(regions_of_bus); do
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

# Dimms under security commands must not be in an active region. Each
# region of dimms with security commands writes back its range as it goes
# (where supported), so that no dirty line lands on media wiped later.
trace_start
run disable-regions ndctl disable-region -b "$bus" all
if [ "$mode" = hidden ]; then
	n=$(trace_events | grep -c "^start=$(hex "$start") len=$(hex "$size") ret=0 ")
	if [ "$n" -eq 1 ]; then
		pass disable-writeback "$name written back once, $(trace_events | grep -c .) region(s) in all"
	else
		fail disable-writeback "$name written back $n times: $(trace_events | paste -sd ';' -)"
	fi
else
	expect_events disable-writeback 0
fi

keyctl new_session >/dev/null
keyctl link @u @s
dd if=/dev/urandom bs=32 count=1 2>/dev/null | keyctl padd user nvdimm-master @u >/dev/null

trace_start
for d in $dimms; do
	run "setup-passphrase $d" ndctl setup-passphrase "$d" -k user:nvdimm-master
done
for d in $dimms; do
	run "disable-dimm $d" ndctl disable-dimm "$d"
	echo 1 >"$(test_dimm "$d")/lock_dimm"
	if [ "$(security "$d")" = locked ]; then pass "lock $d"; else fail "lock $d" "security: $(security "$d")"; fi
	# Enabling a locked dimm unlocks it with the key from the keyring.
	run "enable-dimm $d" ndctl enable-dimm "$d"
	if [ "$(security "$d")" = unlocked ]; then pass "unlock $d"; else fail "unlock $d" "security: $(security "$d")"; fi
done
for d in $dimms; do
	run "crypto-erase $d" ndctl sanitize-dimm "$d" --crypto-erase
done
first=${dimms%% *}
run "overwrite $first" ndctl sanitize-dimm "$first" --overwrite
# The erases wiped the namespace labels too: start them afresh.
# shellcheck disable=SC2086 # one argument per dimm
run init-labels ndctl init-labels -f $dimms
expect_events "dimm-operations" 0

# The activation: one invalidation of exactly the region's range. Until
# the kernel next polls the overwritten dimm (10 s after the command), the
# region refuses to activate with -EBUSY, before it would invalidate.
trace_start
i=0
while ndctl enable-region "$name" >/dev/null 2>&1 && [ ! -e "$region/driver" ] && [ "$i" -lt 60 ]; do
	i=$((i + 1))
	sleep 1
done
if [ -e "$region/driver" ]; then
	pass "enable-region $name" "after $i refusal(s) while the overwrite finished"
else
	fail "enable-region $name" "not active after $i attempts: $(dmesg | tail -n 2 | tr '\n' ' ')"
fi
if [ "$mode" = hidden ]; then
	expect_events "activation $name" 1 "$start" "$size" 0
else
	expect_events "activation $name" 0
	expect_log "bypass $name" "$name: activated without CPU cache invalidation (CONFIG_NVDIMM_REGION_INVALIDATION_TEST)"
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
# Reactivating a region is the next activation: no operation since.
run "disable-region $name" ndctl disable-region "$name"
trace_start
run "re-enable-region $name" ndctl enable-region "$name"
expect_events "reactivation $name" 0

# Other regions that share a dimm with it were changed too: each of them
# invalidates its own range once when it activates.
others=0
for r in $(regions_of_bus); do
	[ "$r" = "$region" ] && continue
	for d in $(dimms_of "$r"); do
		case " $dimms " in
		*" $d "*) others=$((others + 1)); break ;;
		esac
	done
done
trace_start
run enable-regions ndctl enable-region -b "$bus" all
if [ "$mode" = hidden ]; then
	expect_events "activation of $others region(s) sharing dimms" "$others"
else
	expect_events "activation of $others region(s) sharing dimms" 0
fi
