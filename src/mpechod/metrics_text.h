/*
 * metrics_text.h - the figures in Prometheus's text exposition format 0.0.4: a # HELP and a
 * # TYPE line per metric, counters named *_total, base units (seconds, bytes).  Pure.  The
 * metrics themselves are listed in docs/operating.md and man/mpechod.8.
 */
#ifndef MPECHO_METRICS_TEXT_H
#define MPECHO_METRICS_TEXT_H

#include "figures.h"

#include <stddef.h>

/* Room for every metric, with room to spare. */
#define METRICS_TEXT_MAX 16384

/* Writes the exposition of s into out; returns its length (less than outlen), or 0 when it
 * does not fit. */
size_t metrics_text(const struct fig_snap *s, char *out, size_t outlen);

#endif
