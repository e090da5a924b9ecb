/* A tiny sd_notify client and listener for the caller scenarios (built static with gcc, so it
 * runs inside the busybox image too).
 *   sdnotify send MSG             send MSG as one datagram to $NOTIFY_SOCKET
 *   sdnotify listen PATH SECS     bind a datagram socket at PATH, print every message received
 *                                 (one per line) until SECS pass without one; a message carrying
 *                                 an fd (BARRIER=1) gets the fd closed, as systemd does
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int addr_of(const char *path, struct sockaddr_un *a) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a->sun_path) return -1;
    strcpy(a->sun_path, path);
    if (a->sun_path[0] == '@') a->sun_path[0] = 0;
    return 0;
}

int main(int argc, char **argv) {
    struct sockaddr_un a;
    if (argc == 3 && !strcmp(argv[1], "send")) {
        const char *p = getenv("NOTIFY_SOCKET");
        if (!p || addr_of(p, &a)) { fprintf(stderr, "sdnotify: NOTIFY_SOCKET not set\n"); return 2; }
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sendto(s, argv[2], strlen(argv[2]), 0, (struct sockaddr *)&a, sizeof a) < 0) {
            fprintf(stderr, "sdnotify: send to %s: %s\n", p, strerror(errno));
            return 1;
        }
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "listen")) {
        if (addr_of(argv[2], &a)) return 2;
        unlink(argv[2]);
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("sdnotify: bind"); return 1; }
        int secs = atoi(argv[3]);
        for (;;) {
            struct pollfd pf = {s, POLLIN, 0};
            if (poll(&pf, 1, secs * 1000) <= 0) return 0;
            char buf[4096], cbuf[CMSG_SPACE(16 * sizeof(int))];
            struct iovec iov = {buf, sizeof buf - 1};
            struct msghdr m = {0};
            m.msg_iov = &iov; m.msg_iovlen = 1; m.msg_control = cbuf; m.msg_controllen = sizeof cbuf;
            ssize_t n = recvmsg(s, &m, 0);
            if (n < 0) return 1;
            buf[n] = 0;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                    int *fds = (int *)CMSG_DATA(c);
                    for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) close(fds[i]);
                }
            /* one line per message, newlines inside a message become spaces */
            for (ssize_t i = 0; i < n; i++) if (buf[i] == '\n') buf[i] = ' ';
            printf("%s\n", buf);
            fflush(stdout);
        }
    }
    fprintf(stderr, "usage: sdnotify send MSG | sdnotify listen PATH SECS\n");
    return 2;
}
