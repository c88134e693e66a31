/* threads.c: a thread that maps, writes and unmaps memory, and a vfork
 * child that execs /bin/true (the ptrace recorder's tests compile and
 * record it). The thread maps 3 pages, writes all 3 and unmaps the first.
 * Build with -pthread. */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void *worker(void *arg)
{
	char *q = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q == MAP_FAILED)
		return (void *)1;
	for (int k = 0; k < 3; k++)
		q[4096 * k] = 1;
	munmap(q, 4096);
	return arg;
}

int main(void)
{
	pthread_t t;
	void *ret = (void *)1;
	if (pthread_create(&t, NULL, worker, NULL) != 0 || pthread_join(t, &ret) != 0 || ret)
		return 2;
	pid_t pid = vfork();
	if (pid == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
		return 3;
	return 0;
}
