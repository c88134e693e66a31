/* memprog: a small program whose memory system calls are known, for the
 * strace importer tests (tests/test_strace.py).  Build and record it as
 * tests/data/strace/README.md says.
 *
 * What it does, in order (the tests assert these facts):
 *   - mmap 4 anonymous private rw pages, write them
 *   - mremap them to 16 pages (MREMAP_MAYMOVE)
 *   - mprotect the first page read-only
 *   - madvise(MADV_DONTNEED) the second page
 *   - mlock / munlock one page
 *   - munmap of an unaligned address            -> EINVAL
 *   - mmap of an absurd length (1 << 62 bytes)  -> ENOMEM
 *   - mmap MAP_FIXED_NOREPLACE onto itself      -> EEXIST
 *   - madvise(MADV_HUGEPAGE)                    (not in the model: unusable)
 *   - mremap(MREMAP_DONTUNMAP)                  (not in the model: unusable)
 *   - open + fstat + mmap a file read-only, private, then close
 *   - sbrk(64 KiB) (brk growth)
 *   - one pthread (clone with CLONE_VM) that mmaps and munmaps 2 pages
 *   - fork(): the child writes, mmaps a page, and _exit(3)s
 *   - vfork() + execve("/bin/true")
 *   - munmap of the 16 pages, exit(0)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

static void *thread_main(void *arg)
{
	(void)arg;
	char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED) {
		p[0] = 1;
		munmap(p, 8192);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const long pg = 4096;
	const char *file = argc > 1 ? argv[1] : "/etc/passwd";

	char *a = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		return 10;
	memset(a, 'a', 4 * pg);
	a = mremap(a, 4 * pg, 16 * pg, MREMAP_MAYMOVE);
	if (a == MAP_FAILED)
		return 11;
	mprotect(a, pg, PROT_READ);
	madvise(a + pg, pg, MADV_DONTNEED);
	mlock(a + 2 * pg, pg);
	munlock(a + 2 * pg, pg);
	munmap(a + 1, pg);                                         /* EINVAL */
	mmap(NULL, 1UL << 62, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* ENOMEM */
	mmap(a, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0); /* EEXIST */
	madvise(a, 16 * pg, MADV_HUGEPAGE);
	void *d = mremap(a + 4 * pg, pg, pg, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
	if (d != MAP_FAILED)
		munmap(d, pg);

	int fd = open(file, O_RDONLY);
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) == 0 && st.st_size > 0) {
			char *f = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
			if (f != MAP_FAILED) {
				volatile char c = f[0];
				(void)c;
				munmap(f, st.st_size);
			}
		}
		close(fd);
	}

	char *b = sbrk(64 * 1024);
	if (b != (void *)-1)
		memset(b, 'b', 64 * 1024);

	pthread_t t;
	if (pthread_create(&t, NULL, thread_main, NULL) == 0)
		pthread_join(t, NULL);

	pid_t pid = fork();
	if (pid == 0) {
		a[3 * pg] = 'c';
		char *c = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (c != MAP_FAILED)
			c[0] = 'c';
		_exit(3);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);

	pid = vfork();
	if (pid == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);

	munmap(a, 16 * pg);
	return 0;
}
