/*
 * Unit tests for user.c: -u USER[:GROUP] resolved from passwd and group files written into a
 * temporary root (names, numbers, USER:GROUP, supplementary groups, missing users and groups,
 * malformed and very long lines), and, as root, the drop itself in a forked child to nobody
 * (65534), which must then be unable to become root again.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "user.h"

static char root[64];
static char err[256];

static const char passwd_text[] =
	"root:x:0:0:root:/root:/bin/bash\n"
	"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
	"\n"
	"# not a comment, but malformed all the same\n"
	"broken:x:12\n"
	"badid:x:abc:10:bad uid:/:/bin/false\n"
	"toomany:x:20:20:a:b:c:d\n"
	":x:21:21:no name:/:/bin/false\n"
	"mpecho:x:998:997:mpecho echo server:/var/lib/mpecho:/usr/sbin/nologin\n"
	"alice:x:1000:1000:Alice:/home/alice:/bin/bash\n"
	"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	"last:x:3000:3000:no newline at the end:/:/bin/false";

static const char group_text[] =
	"root:x:0:\n"
	"daemon:x:1:\n"
	"adm:x:4:alice,daemon\n"
	"broken:x:\n"
	"badgid:x:zz:alice\n"
	"ali:x:50:alic,alicee\n"
	"mpecho:x:997:\n"
	"alice:x:1000:\n"
	"staff:x:50000:bob,alice\n"
	"nogroup:x:65534:\n";

static void
put(const char *rel, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

static void
setup(void)
{
	char path[128];

	snprintf(root, sizeof(root), "/tmp/test_user.XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	snprintf(path, sizeof(path), "%s/etc", root);
	cr_assert_eq(mkdir(path, 0755), 0);
	put("etc/passwd", passwd_text);
	put("etc/group", group_text);
}

static void
teardown(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/etc/passwd", root);
	unlink(path);
	snprintf(path, sizeof(path), "%s/etc/group", root);
	unlink(path);
	snprintf(path, sizeof(path), "%s/etc", root);
	rmdir(path);
	rmdir(root);
}

TestSuite(resolve, .init = setup, .fini = teardown);

/* Resolves spec under the fixture root and expects success. */
static struct user_ids
ok(const char *spec)
{
	struct user_ids ids;

	err[0] = '\0';
	cr_assert_eq(user_resolve(spec, root, &ids, err, sizeof(err)), 0, "%s: %s", spec, err);
	cr_assert_geq(ids.ngroups, 1, "%s: no groups", spec);
	cr_assert_eq(ids.groups[0], ids.gid, "%s: first group %u, gid %u", spec,
	    (unsigned)ids.groups[0], (unsigned)ids.gid);
	return ids;
}

/* Resolves spec and expects a failure whose reason holds word. */
static void
fails(const char *spec, const char *word)
{
	struct user_ids ids;

	err[0] = '\0';
	cr_assert_eq(user_resolve(spec, root, &ids, err, sizeof(err)), -1, "%s was accepted", spec);
	cr_assert_not_null(strstr(err, word), "%s: err '%s' lacks '%s'", spec, err, word);
}

Test(resolve, a_name_gives_its_ids_and_groups)
{
	struct user_ids ids = ok("alice");

	cr_assert_eq(ids.uid, 1000u);
	cr_assert_eq(ids.gid, 1000u);
	cr_assert_str_eq(ids.name, "alice");
	cr_assert_eq(ids.ngroups, 3, "ngroups %d", ids.ngroups);
	cr_assert_eq(ids.groups[1], 4u, "adm: %u", (unsigned)ids.groups[1]);
	cr_assert_eq(ids.groups[2], 50000u, "staff: %u", (unsigned)ids.groups[2]);
}

Test(resolve, a_system_user_with_no_memberships)
{
	struct user_ids ids = ok("mpecho");

	cr_assert_eq(ids.uid, 998u);
	cr_assert_eq(ids.gid, 997u);
	cr_assert_eq(ids.ngroups, 1);
	ids = ok("last");
	cr_assert_eq(ids.uid, 3000u, "the last line, without a newline, was missed");
}

Test(resolve, user_colon_group_by_name_or_number)
{
	struct user_ids ids = ok("alice:nogroup");

	cr_assert_eq(ids.uid, 1000u);
	cr_assert_eq(ids.gid, 65534u);
	cr_assert_eq(ids.ngroups, 3, "the memberships were lost: %d", ids.ngroups);
	ids = ok("mpecho:4242");
	cr_assert_eq(ids.gid, 4242u);
	ids = ok("daemon:adm");
	cr_assert_eq(ids.gid, 4u);
	cr_assert_eq(ids.ngroups, 1, "adm twice: %d", ids.ngroups);
}

Test(resolve, numbers)
{
	struct user_ids ids = ok("65534");

	cr_assert_eq(ids.uid, 65534u);
	cr_assert_eq(ids.gid, 65534u);
	cr_assert_str_eq(ids.name, "nobody");
	ids = ok("1000");
	cr_assert_eq(ids.ngroups, 3, "a uid in passwd gets the user's groups");
	ids = ok("0:0");
	cr_assert_eq(ids.uid, 0u);
	ids = ok("4000:4001");
	cr_assert_eq(ids.uid, 4000u);
	cr_assert_eq(ids.gid, 4001u);
	cr_assert_eq(ids.ngroups, 1);
	cr_assert_str_eq(ids.name, "4000");
	ids = ok("+5:0");
	cr_assert_eq(ids.uid, 5u, "a number with a plus sign, as chown(1) takes it");
	ids = ok("4294967294:4294967294");
	cr_assert_eq(ids.uid, 4294967294u);
}

Test(resolve, missing_users_and_groups)
{
	fails("bob", "no user 'bob'");
	fails("Alice", "no user 'Alice'");
	fails("alice:wheel", "no group 'wheel'");
	fails("4000", "give USER:GROUP");
	fails("ali", "no user");
}

Test(resolve, bad_specs)
{
	char longspec[300];

	fails("", "not USER");
	fails(":adm", "not USER");
	fails("alice:", "not USER");
	fails("alice:adm:x", "no group 'adm:x'");
	fails("-1", "no user");
	fails("4294967295:0", "no user");
	fails("99999999999999999999:0", "no user");
	fails("+-5:0", "no user");
	memset(longspec, 'a', sizeof(longspec) - 1);
	longspec[sizeof(longspec) - 1] = '\0';
	fails(longspec, "too long");
}

Test(resolve, malformed_lines_are_skipped)
{
	fails("broken", "no user");
	fails("badid", "no user");
	fails("toomany", "no user");
	fails("alice:broken", "no group");
	fails("alice:badgid", "no group");
	cr_assert_eq(ok("12:0").ngroups, 1, "uid 12 came from a malformed line");
}

Test(resolve, member_names_match_whole)
{
	struct user_ids ids = ok("alice");

	for (int i = 0; i < ids.ngroups; i++)
		cr_assert_neq(ids.groups[i], 50u, "'alic' or 'alicee' matched alice");
}

Test(resolve, long_lines_and_many_groups)
{
	size_t big = 200000;
	char *text = malloc(big * 2), *p = text;

	cr_assert_not_null(text);
	/* A gecos field and a member list far longer than any line buffer, then 40 groups. */
	p += sprintf(p, "long:x:7000:7000:");
	memset(p, 'g', big);
	p += big;
	p += sprintf(p, ":/:/bin/false\n");
	put("etc/passwd", text);
	p = text;
	p += sprintf(p, "biggroup:x:7001:");
	for (int i = 0; i < 20000; i++)
		p += sprintf(p, "member%d,", i);
	p += sprintf(p, "long\n");
	for (int i = 0; i < 40; i++)
		p += sprintf(p, "g%d:x:%d:long\n", i, 8000 + i);
	put("etc/group", text);
	free(text);

	struct user_ids ids = ok("long");

	cr_assert_eq(ids.uid, 7000u);
	cr_assert_eq(ids.ngroups, USER_MAX_GROUPS, "ngroups %d", ids.ngroups);
	cr_assert_eq(ids.groups[1], 7001u, "the member at the end of a long line was missed");
	cr_assert_eq(ids.groups[2], 8000u);
}

Test(resolve, unreadable_files)
{
	struct user_ids ids;

	cr_assert_eq(user_resolve("alice", "/nonexistent", &ids, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "cannot read /nonexistent/etc/passwd"), "err: %s", err);
}

/* Runs user_drop(ids) in a child, then check(expect_ok) there; the child exits 0 when all held,
 * else prints why and exits 1. */
static void
drop_in_child(const struct user_ids *ids, int expect_ok)
{
	int st;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char why[256];
		int r = user_drop(ids, why, sizeof(why));

		if (expect_ok && r != 0) {
			fprintf(stderr, "user_drop: %s\n", why);
			_exit(1);
		}
		if (!expect_ok) {
			if (r == 0 || strstr(why, "cannot drop") == NULL) {
				fprintf(stderr, "user_drop returned %d: %s\n", r, why);
				_exit(1);
			}
			_exit(0);
		}
		if (getuid() != ids->uid || geteuid() != ids->uid || getgid() != ids->gid ||
		    getegid() != ids->gid || getgroups(0, NULL) != ids->ngroups) {
			fprintf(stderr, "ids after the drop: %u %u %u %u\n", (unsigned)getuid(),
			    (unsigned)geteuid(), (unsigned)getgid(), (unsigned)getegid());
			_exit(1);
		}
		if (setuid(0) == 0 || seteuid(0) == 0 || setgroups(0, NULL) == 0) {
			fprintf(stderr, "root again after the drop\n");
			_exit(1);
		}
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed (status %#x)", st);
}

Test(drop, as_root_to_nobody_sticks)
{
	struct user_ids ids = { .uid = 65534, .gid = 65534, .ngroups = 2, .groups = { 65534, 4 },
		.name = "nobody" };

	if (geteuid() != 0)
		cr_skip_test("not root: cannot test dropping privileges");
	drop_in_child(&ids, 1);
}

Test(drop, without_privilege_fails_with_a_reason)
{
	struct user_ids nobody = { .uid = 65534, .gid = 65534, .ngroups = 1, .groups = { 65534 },
		.name = "nobody" };
	struct user_ids other = { .uid = 4000, .gid = 4000, .ngroups = 1, .groups = { 4000 },
		.name = "4000" };
	char why[256];
	pid_t pid;
	int st;

	if (geteuid() == 0) {
		/* Become nobody first, in a child, and from there try to become someone else. */
		pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			if (user_drop(&nobody, why, sizeof(why)) != 0)
				_exit(2);
			drop_in_child(&other, 0);
			_exit(0);
		}
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
		return;
	}
	drop_in_child(&other, 0);
}
