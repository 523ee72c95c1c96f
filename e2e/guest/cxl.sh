# shellcheck shell=sh
# shellcheck disable=SC2154 # /init sets $scenario and $mode
# The cxl scenario, on cxl_test's emulated memdevs: create a pmem region,
# destroy it, create it again. Attaching the endpoint decoder and
# committing or resetting decoders change what the range decodes to; the
# activation after them is the one place CPU caches are invalidated: once
# per activation, for the region's range. In a guest, without
# CONFIG_CXL_REGION_INVALIDATION_TEST, the region refuses to activate.

devices=/sys/bus/cxl/devices

# root_decoder: a pmem-capable root decoder of cxl_test with one target.
root_decoder() {
	for d in "$devices"/decoder0.*; do
		[ "$(cat "$d/cap_pmem" 2>/dev/null)" = 1 ] || continue
		case $(cat "$d/target_list") in
		*,*) continue ;;
		esac
		echo "${d##*/}"
		return
	done
}

# memdev_below DECODER: a memdev below the decoder's one host bridge,
# whose id cxl_test gives as the bridge's platform device number.
memdev_below() {
	for m in "$devices"/mem*; do
		case $(readlink -f "$m") in
		*/cxl_host_bridge."$(cat "$devices/$1/target_list")"/*)
			echo "${m##*/}"
			return
			;;
		esac
	done
}

regions_of() { find "$devices/$1/" -maxdepth 1 -name 'region*' | sed 's,.*/,,' | sort; }

# create CHECK: create a region over $memdev and check its activation:
# one invalidation of its range, or (in a guest) a refusal, after which
# cxl create-region tears the region down again.
create() {
	before=$(regions_of "$decoder" | tr '\n' ' ')
	trace_start
	cxl create-region -d "$decoder" -m "$memdev" >/tmp/create.out 2>&1
	rc=$?
	region=
	for r in $(regions_of "$decoder"); do
		case " $before " in *" $r "*) ;; *) region=$r ;; esac
	done
	if [ "$mode" = hidden ]; then
		if [ -z "$region" ] || [ ! -e "$devices/$region/driver" ]; then
			fail "$1 active" "exit $rc: $(tail -n 3 /tmp/create.out | tr '\n' ' ')"
			return 1
		fi
		start=$(cat "$devices/$region/resource")
		size=$(cat "$devices/$region/size")
		pass "$1 active" "$region, $(hex "$size") bytes at $(hex "$start")"
		expect_events "$1 activation" 1 "$start" "$size" 0
		return
	fi
	if [ -n "$region" ] && [ -e "$devices/$region/driver" ]; then
		fail "$1 refused" "$region is active in a guest"
		return 1
	fi
	refused=$(grep -o 'region[0-9]*: failed to enable: .*' /tmp/create.out | head -n 1)
	if [ -z "$refused" ]; then
		fail "$1 refused" "exit $rc: $(tail -n 3 /tmp/create.out | tr '\n' ' ')"
		return 1
	fi
	region=${refused%%:*}
	pass "$1 refused" "cxl create-region: $refused"
	expect_log "$1 refusal message" "$region: not activated: CPU caches may hold stale data of"
	expect_events "$1 activation" 0
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
decoder=$(root_decoder)
memdev=$(memdev_below "$decoder")
if [ -z "$decoder" ] || [ -z "$memdev" ]; then
	fail topology "no one-target pmem root decoder with a memdev (decoder '$decoder', memdev '$memdev')"
	return
fi
note "root decoder $decoder, memdev $memdev"
expect_events load 0

create create || return
first=$region
trace_start
if [ -e "$devices/$first" ]; then
	run "destroy $first" cxl destroy-region -f "$first"
else
	note "$first: already torn down by cxl create-region"
fi
expect_events "destroy $first" 0
create create-again
