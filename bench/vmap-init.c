// SPDX-License-Identifier: GPL-2.0
/*
 * /init of the make bench-vmap initramfs. Loads /test_vmalloc.ko once per
 * test (run_test_mask=1<<i, with the parameters in /params), and once
 * with no test at all (mask 0: what loading the module costs by itself).
 * After each load it prints the difference of the fence counters of
 * /sys/kernel/debug/riscv/tlb_fences:
 *
 *   bench-vmap: mask=0x1 marks=N kernel_traps=N lazy_fences=N
 *     remote_fences=N remote_asid_fences=N          (on one line)
 *
 * or "bench-vmap: mask=0x1 no counters" in a kernel without them (the
 * timing kernels).
 *
 * The module prints each test's time ("Summary: <test> ... avg: N usec")
 * before that line. Then it powers the machine off.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TESTS 10	/* test_case_array[] of lib/test_vmalloc.c in 6.1 */

struct counts {
	unsigned long marks, kernel_traps, lazy_fences, remote_fences,
		remote_asid_fences;
};

static int read_counts(struct counts *c)
{
	char buf[512];
	ssize_t n = -1;
	int fd = open("/d/riscv/tlb_fences", O_RDONLY);

	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The totals come first, one per line. */
	if (sscanf(buf, "marks %lu kernel_traps %lu lazy_fences %lu remote_fences %lu remote_asid_fences %lu",
		   &c->marks, &c->kernel_traps, &c->lazy_fences,
		   &c->remote_fences, &c->remote_asid_fences) != 5)
		return -1;
	return 0;
}

static void run(int modfd, const char *params, unsigned long mask)
{
	char args[512];
	struct counts before, after;
	int counted;

	snprintf(args, sizeof(args), "%s run_test_mask=%lu", params, mask);
	counted = read_counts(&before) == 0;
	fflush(stdout);
	/* The module runs its tests in init and fails on purpose to unload. */
	if (syscall(SYS_finit_module, modfd, args, 0) == 0)
		printf("bench-vmap: test_vmalloc stayed loaded\n");
	if (counted && read_counts(&after) == 0)
		printf("bench-vmap: mask=0x%lx marks=%lu kernel_traps=%lu lazy_fences=%lu remote_fences=%lu remote_asid_fences=%lu\n",
		       mask, after.marks - before.marks,
		       after.kernel_traps - before.kernel_traps,
		       after.lazy_fences - before.lazy_fences,
		       after.remote_fences - before.remote_fences,
		       after.remote_asid_fences - before.remote_asid_fences);
	else
		printf("bench-vmap: mask=0x%lx no counters\n", mask);
	fflush(stdout);
}

int main(void)
{
	char params[256] = "";
	int fd, i;

	if (mount("none", "/d", "debugfs", 0, NULL))
		perror("bench-vmap: mount debugfs");

	fd = open("/params", O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, params, sizeof(params) - 1);

		params[n > 0 ? n : 0] = '\0';
		params[strcspn(params, "\n")] = '\0';
		close(fd);
	}

	fd = open("/test_vmalloc.ko", O_RDONLY);
	if (fd < 0) {
		perror("bench-vmap: open /test_vmalloc.ko");
	} else {
		run(fd, params, 0);
		for (i = 0; i < TESTS; i++)
			run(fd, params, 1UL << i);
		close(fd);
	}
	printf("bench-vmap: done\n");
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
	return 0;
}
