/*
 * conf.h - mpechod's configuration file (-f): one setting a line, named as its long option
 * ("allow 10.0.0.0/8", "grace = 5"), '#' to the end of a line a comment, list options
 * (allow, deny, proxy-from, bind) repeated; the command line wins over the file.  Each value
 * goes through opts.c's own handling of that option (opts_set), so the file and the command
 * line accept exactly the same values.  Nothing here prints or exits.
 */
#ifndef MPECHO_CONF_H
#define MPECHO_CONF_H

#include "opts.h"

#include <stddef.h>

/* A bigger file is refused (256 rules of each list fit many times over). */
#define CONF_MAX_SIZE ((size_t)1024 * 1024)

/* Applies every line of text (NUL-terminated; cut up in place: s points into it afterwards,
 * so it must live as long as s) on top of s.  0, or -1 with "FNAME:LINE: reason" in err. */
int conf_parse(char *text, const char *fname, struct settings *s, char *err, size_t errlen);
/* The whole of the file at path, NUL-terminated, from malloc; NULL with "path: reason" in err
 * (missing, unreadable, too big, a NUL byte in it). */
char *conf_read(const char *path, char *err, size_t errlen);
/* Every setting: the defaults, -f's file over them, the command line over both, then the checks
 * between options.  *text is the file's text that s points into (NULL without -f; the caller
 * frees it once s is no longer used).  On OPTS_ERROR err names the file and line when the
 * file is at fault. */
enum opts_result conf_settings(int argc, char **argv, struct settings *s, char **text, char *err,
    size_t errlen);

#endif
