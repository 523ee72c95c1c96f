#!/usr/bin/env bash
# make kunit ARCH=...: build the series kernel in build/linux with the
# series' kunitconfigs through kunit.py, then boot it under QEMU once per
# run listed in kunit/ARCH.conf. One line per run; ends with the total.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

arch=${1:?usage: run-kunit.sh ARCH}
conf="$top/kunit/$arch.conf"
[ -f "$conf" ] || die "no kunit/$arch.conf: KUnit runs exist for $(find "$top/kunit" -name '*.conf' -printf '%f\n' | sed 's/\.conf$//' | sort | paste -sd' ')"
[ -e "$tree/.git" ] || die "no work tree at build/linux (run: make tree)"

kunit_arch='' cross_compile='' qemu_args=''
kunitconfigs=() kconfig_add=() log_expect=() log_reject=() runs=()
# shellcheck source=../kunit/x86_64.conf
. "$conf"

out="$build_dir/kunit/$arch"
mkdir -p "$out"

common=(--arch="$kunit_arch" --build_dir="$out")
[ -z "$cross_compile" ] || common+=(--cross_compile="$cross_compile")
for k in "${kunitconfigs[@]}"; do
	[ -f "$tree/$k" ] || die "kunit/$arch.conf names $k, which build/linux does not have"
	common+=(--kunitconfig="$k")
done
for k in "${kconfig_add[@]}"; do
	common+=(--kconfig_add="$k")
done
cc=$(ccache_cc "$cross_compile")
[ -z "$cc" ] || common+=(--make_options="$cc")

kunit_py=(python3 "$tree/tools/testing/kunit/kunit.py")

# count WHAT: the number kunit.py's summary line gives for WHAT.
count() { grep -o "$1: [0-9]*" <<<"$summary" | grep -o '[0-9]*$' || echo 0; }

passed=0 failed=0 skipped=0

note "building $arch kernel in ${out#"$top"/} ..."
start=$SECONDS
if ! (cd "$tree" && "${kunit_py[@]}" build "${common[@]}" --jobs="$(nproc)") \
	>"$out/build.log" 2>&1; then
	tail -n 40 "$out/build.log" >&2
	echo "FAIL kunit $arch: build failed (log: ${out#"$top"/}/build.log)"
	echo "0 passed, 1 failed"
	exit 1
fi
note "built in $((SECONDS - start)) s"

for run in "${runs[@]}"; do
	IFS='|' read -r name run_qemu_args expect <<<"$run"
	log="$out/$name.log"
	start=$SECONDS
	rc=0
	boot=()
	[ -z "$qemu_args$run_qemu_args" ] || boot=(--qemu_args="$qemu_args $run_qemu_args")
	(cd "$tree" && "${kunit_py[@]}" exec "${common[@]}" "${boot[@]}") >"$log" 2>&1 || rc=$?
	cp "$out/test.log" "$out/$name.kernel.log" 2>/dev/null || : >"$out/$name.kernel.log"

	summary=$(grep -o 'Ran [0-9]* tests:.*' "$log" | tail -n 1 || true)
	p=$(count passed) f=$(count failed) c=$(count crashed) s=$(count skipped) e=$(count errors)

	problems=()
	[ "$rc" -eq 0 ] || problems+=("kunit.py exit $rc")
	[ -n "$summary" ] || problems+=("no test results")
	[ $((f + c + e)) -eq 0 ] || problems+=("$f failed, $c crashed, $e errors")
	for want in "$expect" "${log_expect[@]}"; do
		grep -qF -- "$want" "$out/$name.kernel.log" ||
			problems+=("kernel log lacks \"$want\"")
	done
	for bad in "${log_reject[@]}"; do
		if hit=$(grep -m1 -E -- "$bad" "$out/$name.kernel.log"); then
			problems+=("kernel log has \"$hit\"")
		fi
	done

	passed=$((passed + p))
	skipped=$((skipped + s))
	failed=$((failed + f + c + e))
	secs=$((SECONDS - start))
	if [ "${#problems[@]}" -eq 0 ]; then
		echo "ok   kunit $arch $name: $p passed, $s skipped${expect:+ [$expect]} (${secs} s)"
	else
		[ $((f + c + e)) -gt 0 ] || failed=$((failed + 1))
		grep -E 'FAILED|CRASHED|ERROR|Expected|not ok' "$log" | head -n 40 >&2 || true
		echo "FAIL kunit $arch $name: $(printf '%s; ' "${problems[@]}")(logs: ${log#"$top"/}, ${out#"$top"/}/$name.kernel.log)"
	fi
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
