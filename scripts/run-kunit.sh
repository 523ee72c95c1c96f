#!/usr/bin/env bash
# make kunit ARCH=...: for each run listed in kunit/ARCH.conf, build the
# series kernel in build/linux through kunit.py with that run's one
# kunitconfig (each suite alone, as kunit.py run --kunitconfig=... does),
# then boot it under QEMU. A build is shared by the runs of the same
# kunitconfig and options. One line per run; ends with the total.
#
# Usage: run-kunit.sh ARCH [RUN...]   (default: every run of kunit/ARCH.conf)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

arch=${1:?usage: run-kunit.sh ARCH [RUN...]}
shift
# The runs to make: all of kunit/ARCH.conf, or those named.
only=("$@")
conf="$top/kunit/$arch.conf"
[ -f "$conf" ] || die "no kunit/$arch.conf: KUnit runs exist for $(arches "$top/kunit" | paste -sd' ')"
[ -e "$tree/.git" ] || die "no work tree at build/linux (run: make tree)"

kunit_arch='' cross_compile='' qemu_args=''
kconfig_add=() kernel_args=() log_expect=() log_reject=() runs=()
# shellcheck source=../kunit/x86_64.conf
. "$conf"

common=(--arch="$kunit_arch")
[ -z "$cross_compile" ] || common+=(--cross_compile="$cross_compile")
for k in "${kconfig_add[@]}"; do
	common+=(--kconfig_add="$k")
done
cc=$(ccache_cc "$cross_compile")
[ -z "$cc" ] || common+=(--make_options="$cc")

kunit_py=(python3 "$tree/tools/testing/kunit/kunit.py")

# count WHAT: the number kunit.py's summary line gives for WHAT.
count() { grep -o "$1: [0-9]*" <<<"$summary" | grep -o '[0-9]*$' || echo 0; }

passed=0 failed=0 skipped=0
built=" "

# build KUNITCONFIG OUT [OPTION...]: build the kernel of KUNITCONFIG, with
# the Kconfig OPTIONs added, in OUT, once per make kunit; false (with the
# log's tail shown) if the build fails.
build() {
	local start=$SECONDS k=$1 o=$2 add=()
	shift 2
	case $built in *" $o "*) return 0 ;; esac
	for opt in "$@"; do
		add+=(--kconfig_add="$opt")
	done
	mkdir -p "$o"
	note "building $arch kernel for $k${*:+ with $*} in ${o#"$top"/} ..."
	if ! (cd "$tree" && "${kunit_py[@]}" build "${common[@]}" --build_dir="$o" \
		--kunitconfig="$k" "${add[@]}" --jobs="$(nproc)") >"$o/build.log" 2>&1; then
		tail -n 40 "$o/build.log" >&2
		return 1
	fi
	built+="$o "
	note "built in $((SECONDS - start)) s"
}

for want in "${only[@]}"; do
	printf '%s\n' "${runs[@]}" | grep -q "^$want|" ||
		die "kunit/$arch.conf has no run named $want"
done
for run in "${runs[@]}"; do
	IFS='|' read -r name kunitconfig run_qemu_args expect run_kconfig <<<"$run"
	if [ ${#only[@]} -gt 0 ] && ! printf '%s\n' "${only[@]}" | grep -qx -- "$name"; then
		continue
	fi
	read -ra run_kconfig <<<"$run_kconfig"
	[ -f "$tree/$kunitconfig" ] ||
		die "kunit/$arch.conf run $name names $kunitconfig, which build/linux does not have"
	# One build directory per kunitconfig and added options:
	# lib/memregion.kunitconfig builds in build/kunit/ARCH/lib_memregion,
	# with CONFIG_KASAN=y added in lib_memregion+KASAN. Runs that differ
	# only in their QEMU arguments share a build.
	slug=${kunitconfig%.kunitconfig}
	opts=$(printf '%s\n' "${run_kconfig[@]}" | sed -e 's/^CONFIG_//' -e 's/=y$//' | paste -sd+)
	out="$build_dir/kunit/$arch/${slug//\//_}${opts:++$opts}"
	if ! build "$kunitconfig" "$out" "${run_kconfig[@]}"; then
		echo "FAIL kunit $arch $name: build failed (log: ${out#"$top"/}/build.log)"
		failed=$((failed + 1))
		continue
	fi
	log="$out/$name.log"
	start=$SECONDS
	rc=0
	boot=()
	[ -z "$qemu_args$run_qemu_args" ] || boot=(--qemu_args="$qemu_args $run_qemu_args")
	for a in "${kernel_args[@]}"; do
		boot+=(--kernel_args="$a")
	done
	# A secondary CPU has 1 s to come up; under TCG on a loaded host it
	# can miss that (seen with lockdep kernels), and the run would test
	# fewer CPUs than it expects. Such a boot is made once more, said so.
	for attempt in 1 2; do
		rc=0
		(cd "$tree" && "${kunit_py[@]}" exec "${common[@]}" --build_dir="$out" \
			--kunitconfig="$kunitconfig" "${boot[@]}") >"$log" 2>&1 || rc=$?
		cp "$out/test.log" "$out/$name.kernel.log" 2>/dev/null || : >"$out/$name.kernel.log"
		miss=$(grep -m1 -E 'CPU[0-9]+: failed to come online' "$out/$name.kernel.log" || true)
		if [ -z "$miss" ] || [ "$attempt" -eq 2 ]; then
			break
		fi
		note "$name: \"$miss\" (the host was too slow for the bring-up timeout): booting again"
	done

	summary=$(grep -o 'Ran [0-9]* tests:.*' "$log" | tail -n 1 || true)
	p=$(count passed) f=$(count failed) c=$(count crashed) s=$(count skipped) e=$(count errors)
	# 6.1's kunit.py counts the parameters of a skipped case as passed;
	# the kernel's own totals are right.
	totals=$(grep -o 'Totals: pass:[0-9]* fail:[0-9]* skip:[0-9]*' "$out/$name.kernel.log" |
		tail -n 1 || true)
	if [ -n "$totals" ]; then
		read -r p f s <<<"${totals//[!0-9]/ }"
	fi

	problems=()
	[ "$rc" -eq 0 ] || problems+=("kunit.py exit $rc")
	[ -n "$summary" ] || problems+=("no test results")
	[ $((f + c + e)) -eq 0 ] || problems+=("$f failed, $c crashed, $e errors")
	# A run may expect several lines, joined by "&&".
	wants=() rest=$expect
	while [ -n "$rest" ]; do
		wants+=("${rest%%&&*}")
		[ "${rest#*&&}" != "$rest" ] || break
		rest=${rest#*&&}
	done
	for want in "${wants[@]}" "${log_expect[@]}"; do
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
