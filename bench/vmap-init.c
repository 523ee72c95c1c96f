// SPDX-License-Identifier: GPL-2.0
/*
 * /init of the make bench-vmap initramfs: prints the flush_cache_vmap()
 * counters, loads /test_vmalloc.ko with the parameters in /params (its
 * default tests; the module prints their times and unloads itself), prints
 * the counters again and powers the machine off.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <unistd.h>

static void print_counters(const char *when)
{
	char buf[128];
	ssize_t n = -1;
	int fd = open("/d/flush_cache_vmap", O_RDONLY);

	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (n <= 0) {
		printf("bench-vmap: %s: no counters\n", when);
		return;
	}
	buf[n] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
	printf("bench-vmap: %s: %s\n", when, buf);
}

int main(void)
{
	char params[256] = "";
	int fd;

	if (mount("none", "/d", "debugfs", 0, NULL))
		perror("bench-vmap: mount debugfs");

	fd = open("/params", O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, params, sizeof(params) - 1);

		params[n > 0 ? n : 0] = '\0';
		params[strcspn(params, "\n")] = '\0';
		close(fd);
	}

	print_counters("before");
	fflush(stdout);
	fd = open("/test_vmalloc.ko", O_RDONLY);
	if (fd < 0)
		perror("bench-vmap: open /test_vmalloc.ko");
	/* The module runs its tests in init and fails on purpose to unload. */
	else if (syscall(SYS_finit_module, fd, params, 0) == 0)
		printf("bench-vmap: test_vmalloc stayed loaded\n");
	print_counters("after");
	printf("bench-vmap: done\n");
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
	return 0;
}
