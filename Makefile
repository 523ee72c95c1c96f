# A thin front to scripts/: each target is one script; see README.md.
#
#   make kunit [ARCH=x86_64]  prepare the patched tree, build it, run the
#                             series' KUnit suites under QEMU
#   make test                 every check (what .ci/run runs)
#   make tree | export | export-check   the developer workflow
#   make bench-vmap           riscv flush_cache_vmap() benchmark (slow; not in test)

ARCH ?= x86_64

.PHONY: all deps tree export export-check kunit test bench-vmap

all: kunit

deps:
	@scripts/install-deps.sh

tree: deps
	@scripts/prepare-tree.sh

export:
	@scripts/export-series.sh

export-check:
	@scripts/export-check.sh

kunit: tree
	@scripts/run-kunit.sh $(ARCH)

test: deps
	@scripts/run-tests.sh

bench-vmap: tree
	@scripts/bench-vmap.sh
