/* privfile.c — owner-only output files (see privfile.h). */
#include "util/privfile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *privfile_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return NULL;
    struct stat st;
    /* An existing regular file keeps its old mode through O_TRUNC: narrow it. */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        fchmod(fd, 0600);
    FILE *f = fdopen(fd, "wb");
    if (!f)
        close(fd);
    return f;
}
