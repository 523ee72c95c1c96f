#!/usr/bin/env bash
# make test: every check of the project, stage by stage: the patched tree,
# checkpatch on each patch, the workspace's own tests, the KUnit runs of every
# architecture in kunit/, the end-to-end runs of every architecture in
# e2e/arches/, and the upstream
# gates but randconfig. Prints each stage's lines, the time of each
# stage, and ends with the total "N passed, N failed".
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

stages=("tree|$top/scripts/prepare-tree.sh"
	"checkpatch|$top/scripts/check-patches.sh"
	"workspace|$top/scripts/test-workspace.sh")
for arch in $(arches "$top/kunit"); do
	stages+=("kunit $arch|$top/scripts/run-kunit.sh $arch")
done
for arch in $(arches "$top/e2e/arches"); do
	stages+=("e2e $arch|env E2E_ARCH=$arch $top/scripts/run-e2e.sh")
done
# Every gate but randconfig, which takes hours cold: make gates runs it.
stages+=("gates|$top/scripts/run-gates.sh patches wc builds debian docs shellcheck")

passed=0 failed=0 times=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for stage in "${stages[@]}"; do
	name=${stage%%|*}
	read -ra cmd <<<"${stage#*|}"
	echo "== $name"
	start=$SECONDS
	rc=0
	"${cmd[@]}" 2>&1 | tee "$log" || rc=$?
	times+=("$(printf '%-16s %5d s' "$name" $((SECONDS - start)))")
	total=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
	if [ -z "$total" ]; then
		# A stage without a result line is one check: its exit code.
		if [ "$rc" -eq 0 ]; then
			echo "ok   $name"
			passed=$((passed + 1))
		else
			echo "FAIL $name: exited $rc"
			failed=$((failed + 1))
		fi
		continue
	fi
	p=${total%% passed*}
	f=${total#*passed, }
	f=${f%% failed*}
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $name: exited $rc"
		failed=$((failed + 1))
	fi
done

echo "== stage times"
printf '%s\n' "${times[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
