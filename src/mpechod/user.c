/*
 * user.c - resolving -u USER[:GROUP] from passwd(5) and group(5) without NSS, and dropping to
 * it (see user.h).  The master resolves the spec at start, while it can still report a typo as
 * a usage error, and drops once its sockets are bound and the store is open; every process it
 * forks afterwards inherits the unprivileged ids.
 */
#define _GNU_SOURCE
#include "user.h"
#include "num.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Fields of a well-formed line of each file. */
#define USER_PASSWD_FIELDS 7
#define USER_GROUP_FIELDS 4

/* What one scan of passwd or group looks for, and what it found. */
struct user_query {
	const char *name;   /* match this name, or, when NULL, this id */
	unsigned long id;
	unsigned long found_id, found_gid;
	char found_name[64];
	struct user_ids *ids; /* membership scans add groups naming ids->name here */
};

typedef int (*user_line_fn)(char **f, struct user_query *q);

__attribute__((format(printf, 3, 4))) static int
user_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* A decimal id in *v; (uid_t)-1 is not one, it means "unchanged" to setresuid. */
static int
user_number(const char *s, unsigned long *v)
{
	long n;

	if (num_parse(s, 0, 0xfffffffeL, &n) == -1)
		return -1;
	*v = (unsigned long)n;
	return 0;
}

/* Splits line at each ':' into at most max fields; returns their number, or max + 1 when
 * there are more. */
static int
user_split(char *line, char **f, int max)
{
	int n = 0;

	for (char *p = line; p != NULL; n++) {
		if (n == max)
			return max + 1;
		f[n] = p;
		if ((p = strchr(p, ':')) != NULL)
			*p++ = '\0';
	}
	return n;
}

/* Calls fn on the fields of every well-formed line of root/file with nfields fields, until it
 * returns nonzero.  Returns 1 when fn stopped the scan, 0 at the end, -1 if unreadable. */
static int
user_scan(const char *root, const char *file, int nfields, user_line_fn fn, struct user_query *q,
    char *err, size_t errlen)
{
	char path[4096], *line = NULL, *f[USER_PASSWD_FIELDS];
	size_t cap = 0;
	ssize_t len;
	FILE *fp;
	int r = 0;

	snprintf(path, sizeof(path), "%s%s", strcmp(root, "/") == 0 ? "" : root, file);
	if ((fp = fopen(path, "re")) == NULL)
		return user_fail(err, errlen, "cannot read %s: %s", path, strerror(errno));
	while (r == 0 && (len = getline(&line, &cap, fp)) != -1) {
		if (len > 0 && line[len - 1] == '\n')
			line[len - 1] = '\0';
		if (user_split(line, f, nfields) == nfields && f[0][0] != '\0')
			r = fn(f, q);
	}
	if (r == 0 && ferror(fp))
		r = user_fail(err, errlen, "cannot read %s: %s", path, strerror(errno));
	free(line);
	fclose(fp);
	return r;
}

/* A passwd line for q's name or uid: name:password:uid:gid:gecos:home:shell. */
static int
user_passwd_line(char **f, struct user_query *q)
{
	unsigned long uid, gid;

	if (user_number(f[2], &uid) == -1 || user_number(f[3], &gid) == -1)
		return 0;
	if (q->name != NULL ? strcmp(f[0], q->name) != 0 : uid != q->id)
		return 0;
	q->found_id = uid;
	q->found_gid = gid;
	if (strlen(f[0]) >= sizeof(q->found_name))
		return 0;
	snprintf(q->found_name, sizeof(q->found_name), "%s", f[0]);
	return 1;
}

/* A group line for q's name: name:password:gid:members. */
static int
user_group_line(char **f, struct user_query *q)
{
	unsigned long gid;

	if (user_number(f[2], &gid) == -1 || strcmp(f[0], q->name) != 0)
		return 0;
	q->found_id = gid;
	return 1;
}

/* Adds gid to ids unless it is there already or the list is full. */
static void
user_add_group(struct user_ids *ids, gid_t gid)
{
	for (int i = 0; i < ids->ngroups; i++)
		if (ids->groups[i] == gid)
			return;
	if (ids->ngroups < USER_MAX_GROUPS)
		ids->groups[ids->ngroups++] = gid;
}

/* A group line: its gid is added when its comma-separated member list names the user. */
static int
user_member_line(char **f, struct user_query *q)
{
	unsigned long gid;
	char *save = NULL;

	if (user_number(f[2], &gid) == -1)
		return 0;
	for (char *m = strtok_r(f[3], ",", &save); m != NULL; m = strtok_r(NULL, ",", &save))
		if (strcmp(m, q->ids->name) == 0) {
			user_add_group(q->ids, (gid_t)gid);
			break;
		}
	return q->ids->ngroups == USER_MAX_GROUPS;
}

/* Fills out's uid, name and (when the user has a passwd line) gid from USER; *known says
 * whether it has one. */
static int
user_find(const char *user, const char *root, struct user_ids *out, int *known, char *err,
    size_t errlen)
{
	struct user_query q = { .name = user };
	int r;

	if (user_number(user, &q.id) == 0)
		q.name = NULL;
	if ((r = user_scan(root, "/etc/passwd", USER_PASSWD_FIELDS, user_passwd_line, &q, err,
	    errlen)) == -1)
		return -1;
	*known = r;
	if (r == 0 && q.name != NULL)
		return user_fail(err, errlen, "no user '%s' in /etc/passwd", user);
	out->uid = (uid_t)(r ? q.found_id : q.id);
	out->gid = (gid_t)q.found_gid;
	snprintf(out->name, sizeof(out->name), "%.63s", r ? q.found_name : user);
	return 0;
}

/* The gid of GROUP, a name in root's /etc/group or a number. */
static int
user_find_group(const char *group, const char *root, gid_t *gid, char *err, size_t errlen)
{
	struct user_query q = { .name = group };
	int r;

	if (user_number(group, &q.id) == 0) {
		*gid = (gid_t)q.id;
		return 0;
	}
	if ((r = user_scan(root, "/etc/group", USER_GROUP_FIELDS, user_group_line, &q, err,
	    errlen)) == -1)
		return -1;
	if (r == 0)
		return user_fail(err, errlen, "no group '%s' in /etc/group", group);
	*gid = (gid_t)q.found_id;
	return 0;
}

int
user_resolve(const char *spec, const char *root, struct user_ids *out, char *err, size_t errlen)
{
	char user[256], *group;
	struct user_query q = { .ids = out };
	int known;

	memset(out, 0, sizeof(*out));
	if (snprintf(user, sizeof(user), "%s", spec) >= (int)sizeof(user))
		return user_fail(err, errlen, "user '%.64s...' is too long", spec);
	if ((group = strchr(user, ':')) != NULL)
		*group++ = '\0';
	if (user[0] == '\0' || (group != NULL && group[0] == '\0'))
		return user_fail(err, errlen, "'%s' is not USER or USER:GROUP", spec);
	if (strlen(user) >= sizeof(out->name))
		return user_fail(err, errlen, "user '%.64s...' is too long", user);
	if (user_find(user, root, out, &known, err, errlen) == -1)
		return -1;
	if (group != NULL && user_find_group(group, root, &out->gid, err, errlen) == -1)
		return -1;
	if (!known && group == NULL)
		return user_fail(err, errlen, "uid %s has no line in /etc/passwd: give USER:GROUP",
		    user);
	out->groups[0] = out->gid;
	out->ngroups = 1;
	if (known && user_scan(root, "/etc/group", USER_GROUP_FIELDS, user_member_line, &q, err,
	    errlen) == -1)
		return -1;
	return 0;
}

int
user_drop(const struct user_ids *ids, char *err, size_t errlen)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (setgroups((size_t)ids->ngroups, ids->groups) == -1)
		return user_fail(err, errlen, "cannot drop to user %s: setgroups: %s", ids->name,
		    strerror(errno));
	if (setresgid(ids->gid, ids->gid, ids->gid) == -1)
		return user_fail(err, errlen, "cannot drop to group %u: setresgid: %s",
		    (unsigned)ids->gid, strerror(errno));
	if (setresuid(ids->uid, ids->uid, ids->uid) == -1)
		return user_fail(err, errlen, "cannot drop to user %s: setresuid: %s", ids->name,
		    strerror(errno));
	if (getresuid(&ru, &eu, &su) == -1 || getresgid(&rg, &eg, &sg) == -1 ||
	    ru != ids->uid || eu != ids->uid || su != ids->uid ||
	    rg != ids->gid || eg != ids->gid || sg != ids->gid)
		return user_fail(err, errlen, "dropping to user %s did not stick", ids->name);
	if (getgroups(0, NULL) != ids->ngroups)
		return user_fail(err, errlen, "dropping the groups of user %s did not stick",
		    ids->name);
	if (ids->uid != 0 && (setuid(0) != -1 || (ids->gid != 0 && setgid(0) != -1)))
		return user_fail(err, errlen, "user %s can become root again", ids->name);
	return 0;
}
