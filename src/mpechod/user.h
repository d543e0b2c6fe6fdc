/*
 * user.h - -u/--user USER[:GROUP]: the ids mpechod runs as once it has bound its sockets and
 * opened its store, and the drop to them.
 *
 * mpechod is linked statically, where getpwnam(3) would need NSS's shared modules, so names are
 * resolved by reading passwd(5) and group(5) under a root directory given by the caller ("/"
 * normally, fixture trees in the unit tests): local accounts only, as a system service's user
 * is.  Numbers are accepted for either part.  Nothing here prints or exits: functions return -1
 * with a one-line reason in the caller's buffer.
 */
#ifndef MPECHO_USER_H
#define MPECHO_USER_H

#include <stddef.h>
#include <sys/types.h>

/* The most supplementary groups kept; a user in more /etc/group lines keeps the first ones
 * (dropping a group takes nothing a service needs away from it). */
#define USER_MAX_GROUPS 32

struct user_ids {
	uid_t uid;
	gid_t gid;                       /* the primary group: GROUP, or the user's */
	int ngroups;                     /* 1 to USER_MAX_GROUPS */
	gid_t groups[USER_MAX_GROUPS];   /* gid first, then the groups that list the user */
	char name[64];                   /* the user's name, or its number */
};

/* Resolves spec, "USER" or "USER:GROUP", with the files under root (root/etc/passwd and
 * root/etc/group).  USER is a name in passwd, or a number: the uid of that passwd line, or any
 * uid when GROUP is given too.  GROUP is a name in group, or a number; without it the primary
 * group is the user's passwd gid.  The supplementary groups are the primary group and, as
 * initgroups(3) sets them, every group whose member list names the user.  Lines that are not
 * well-formed (too few fields, ids that are not numbers) are skipped.  Returns 0, or -1 with err
 * filled ("no user 'x' in /etc/passwd", ...). */
int user_resolve(const char *spec, const char *root, struct user_ids *out, char *err,
    size_t errlen);

/* Becomes ids for good: setgroups, setresgid, then setresuid (groups first, while the process
 * may still change them), then checks that it stuck: the real, effective and saved ids all
 * equal the target, and, unless the target is root, that setuid(0) and setgid(0) now fail.
 * Returns 0, or -1 with err filled.  On failure the process may be half-dropped and must exit. */
int user_drop(const struct user_ids *ids, char *err, size_t errlen);

#endif
