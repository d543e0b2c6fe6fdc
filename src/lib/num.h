/*
 * num.h - whole numbers from text, range-checked (OpenBSD strtonum's discipline, not atoi).
 *
 * Every program's option parser takes its numbers through here.
 */
#ifndef MPECHO_NUM_H
#define MPECHO_NUM_H

/* Parses a whole decimal number in [min, max] (an optional sign, digits, nothing after them);
 * stores it in *out and returns 0, or returns -1 for anything else, leaving *out alone. */
int num_parse(const char *str, long min, long max, long *out);

#endif
