/*
 * termtext.c — control characters from the target shown as escapes, not sent to the terminal
 * (termtext.h).
 */
#include "util/termtext.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The escape for byte c (a C0 control but newline and tab, or DEL) or, when c1, for the C1
 * control U+0080-U+009F whose UTF-8 form is 0xC2 c; "" when c is printed as it is. */
static const char *escape_of(unsigned char c, bool c1, char buf[8])
{
    if (c1) {
        snprintf(buf, 8, "\\u%04x", c);
        return buf;
    }
    if (c == '\n' || c == '\t')
        return "";
    if (c == '\r')
        return "\\r";
    if (c < 0x20 || c == 0x7f) {
        snprintf(buf, 8, "\\x%02x", c);
        return buf;
    }
    return "";
}

static bool is_c1_after_c2(unsigned char c) { return c >= 0x80 && c <= 0x9f; }

/* ---- stdout through a filter ------------------------------------------------------------ */

struct filter {
    FILE *to;
    bool held_c2;   /* the last byte written was 0xC2, held back: it may start a C1 control */
};

static ssize_t filter_write(void *cookie, const char *data, size_t len)
{
    struct filter *f = cookie;
    const unsigned char *p = (const unsigned char *)data;
    for (size_t i = 0; i < len; i++) {
        char buf[8];
        if (f->held_c2) {
            f->held_c2 = false;
            if (is_c1_after_c2(p[i])) {
                fputs(escape_of(p[i], true, buf), f->to);
                continue;
            }
            fputc(0xc2, f->to);
        }
        if (p[i] == 0xc2) {
            f->held_c2 = true;
            continue;
        }
        const char *e = escape_of(p[i], false, buf);
        if (*e)
            fputs(e, f->to);
        else
            fputc(p[i], f->to);
    }
    return fflush(f->to) == 0 ? (ssize_t)len : -1;
}

static int filter_close(void *cookie)
{
    struct filter *f = cookie;
    if (f->held_c2)
        fputc(0xc2, f->to);
    return fclose(f->to);
}

void term_filter_stdout(void)
{
    static struct filter f;
    fflush(stdout);
    int fd = dup(STDOUT_FILENO);
    FILE *to = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!to) {
        if (fd >= 0)
            close(fd);
        return;   /* unfiltered rather than nothing */
    }
    f = (struct filter){to, false};
    FILE *filtered = fopencookie(&f, "w", (cookie_io_functions_t){
        .write = filter_write, .close = filter_close});
    if (!filtered) {
        fclose(to);
        return;
    }
    stdout = filtered;
}
