/*
 * num.c - whole numbers from text, range-checked.
 */
#include "num.h"

#include <errno.h>
#include <stdlib.h>

int
num_parse(const char *str, long min, long max, long *out)
{
	const char *p = str;
	char *end;
	long v;

	if (*p == '-' || *p == '+')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	v = strtol(str, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}
