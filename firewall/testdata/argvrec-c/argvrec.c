/*
 * argvrec, the same recorder as ../argvrec/main.go in C: it starts in a
 * tenth of the time a Go program needs, so tests that run a thousand
 * commands measure the backend rather than the recorder's start-up.
 * Built by the tests when a C compiler is present.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char buf[65536];
static size_t n;

static void put(const char *s) {
	while (*s && n < sizeof buf - 8)
		buf[n++] = *s++;
}

static void putstr(const char *s) {
	put("\"");
	for (; *s && n < sizeof buf - 8; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[n++] = '\\';
			buf[n++] = c;
		} else if (c < 0x20) {
			n += snprintf(buf + n, 7, "\\u%04x", c);
		} else {
			buf[n++] = c;
		}
	}
	put("\"");
}

int main(int argc, char **argv) {
	struct timespec ts;
	char t[32];
	int i, fd;
	if (argc < 2)
		return 2;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(t, sizeof t, "%lld", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	put("{\"t\":");
	put(t);
	put(",\"argv\":[");
	for (i = 2; i < argc; i++) {
		if (i > 2)
			put(",");
		putstr(argv[i]);
	}
	put("]}\n");
	fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0600);
	if (fd < 0)
		return 3;
	if (write(fd, buf, n) != (ssize_t)n)
		return 4;
	close(fd);
	if (argc > 2 && strcmp(argv[2], "fail") == 0) {
		fputs("refused\n", stderr);
		return 1;
	}
	if (argc > 2 && strcmp(argv[2], "sleep") == 0)
		sleep(3600);
	return 0;
}
