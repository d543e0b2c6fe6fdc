/*
 * cidr.h - address blocks ("192.0.2.0/24", "2001:db8::/32", bare addresses) and the allow/deny
 * rules built from them (--allow, --deny, --proxy-from).
 *
 * Pure: nothing here allocates, prints or reads a clock.  A rule set is one block without
 * pointers, so it can be filled by option parsing and then live in a shared mapping.
 *
 * Two decisions the callers rely on:
 *  - A block whose address has bits set past its prefix ("10.1.2.3/8") is refused with a
 *    message naming the block that was probably meant: in an access list a typo that widens a
 *    rule without a word is worse than an error at start-up.
 *  - An IPv4-mapped IPv6 address (::ffff:192.0.2.1, as a dual-stack socket reports an IPv4
 *    peer) is an IPv4 address: it matches IPv4 blocks, and a mapped block with a prefix of 96
 *    or more ("::ffff:10.0.0.0/104") is parsed as the IPv4 block it covers ("10.0.0.0/8").  An
 *    IPv6 block of a shorter prefix ("::/0") matches IPv6 peers only.
 */
#ifndef MPECHO_CIDR_H
#define MPECHO_CIDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Room for any block as text: an IPv6 address (45), "/128" and the NUL. */
#define CIDR_TEXT_MAX 50
/* Rules per list: --allow, --deny and --proxy-from each take at most this many. */
#define CIDR_LIST_MAX 256

struct cidr {
	int family;              /* AF_INET or AF_INET6 */
	unsigned bits;           /* the prefix length: 0-32, or 0-128 */
	unsigned char addr[16];  /* network byte order; 4 bytes for AF_INET; host bits zero */
};

struct cidr_list {
	unsigned n;
	struct cidr v[CIDR_LIST_MAX];
};

struct cidr_rules {
	struct cidr_list allow, deny;
};

enum cidr_verdict {
	CIDR_ALLOWED,     /* no deny rule matches, and no allow rule exists or one matches */
	CIDR_DENIED,      /* a deny rule matches (whatever the allow rules say) */
	CIDR_NOT_ALLOWED, /* allow rules exist and none matches */
};

enum cidr_kind { CIDR_ALLOW, CIDR_DENY };

/* Parses a block or a bare address (a /32 or /128); an IPv6 address may be bracketed
 * ("[::1]/128").  Returns 0, or -1 with a one-line reason in err that quotes text. */
int cidr_parse(const char *text, struct cidr *out, char *err, size_t errlen);
/* Whether the address of sa (AF_INET or AF_INET6; any other family matches nothing) is in c. */
int cidr_match(const struct cidr *c, const struct sockaddr *sa);
/* Writes c as cidr_parse reads it ("10.0.0.0/8", "2001:db8::/32") into buf of at least
 * CIDR_TEXT_MAX bytes; returns buf. */
char *cidr_format(const struct cidr *c, char *buf, size_t buflen);

/* Appends c; returns -1 when the list already holds CIDR_LIST_MAX blocks. */
int cidr_list_add(struct cidr_list *l, const struct cidr *c);
/* Whether sa is in any block of l (never, for an empty list). */
int cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);

/* Appends c to r's allow or deny list; -1 when that list is full. */
int cidr_rules_add(struct cidr_rules *r, enum cidr_kind kind, const struct cidr *c);
/* A connection from sa is refused when it matches a deny rule, or when allow rules exist and
 * none matches.  Rules zeroed (no rule at all) allow everything. */
enum cidr_verdict cidr_rules_check(const struct cidr_rules *r, const struct sockaddr *sa);

#endif
