/*
 * admit.h - admission control: who may start a session now (OpenSSH's srclimit.c).
 *
 * Two pieces of pure logic consulted for every accepted connection before its session starts:
 * the count of concurrent sessions per source address (--max-per-source) and a token bucket of
 * new sessions per second (--max-rate).  Refusals are reported through log.h's rate-limited
 * log.  Nothing here reads a clock, prints or allocates: the caller passes the time in
 * milliseconds and the memory, so the unit tests step the clock by hand, and the whole state is
 * one block without pointers, in the master's shared mapping.  Its writers are the master (fork
 * mode), the pool processes (--prefork: each admits the connection it accepted) and sessions
 * that learn their client from a PROXY header; they serialise admit_* behind shared.h's robust
 * process-shared lock, and the master rebuilds the table from the claims after a death under it.
 */
#ifndef MPECHO_ADMIT_H
#define MPECHO_ADMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A source: the address family, then the IPv4 or IPv6 address; never the port. */
#define ADMIT_KEY_LEN 17
struct admit_key {
	unsigned char b[ADMIT_KEY_LEN];
};

/* What one process has counted for --max-per-source, in memory that it owns and the master can
 * read (its slot).  The count and held change together under the shared lock, so that whenever
 * the lock is free the table is the sum of the claims held: after a death under the lock (the
 * table may be torn, a removal half done) the master rebuilds the table from them. */
struct admit_claim {
	struct admit_key key;
	uint32_t held; /* key is counted */
};

enum admit_verdict { ADMIT_OK, ADMIT_PER_SOURCE, ADMIT_RATE };

/* A token bucket: rate tokens a second, holding at most a second's worth; it starts full. */
struct admit_bucket {
	int64_t tokens;  /* in thousandths of a token */
	int64_t last_ms; /* when it was last refilled; -1: never */
};

struct admit_src {
	struct admit_key key;
	uint32_t count; /* 0: the slot is empty */
};

struct admit {
	int max_per_source;     /* 0: no limit */
	int max_rate;           /* sessions a second; 0: no limit */
	struct admit_bucket rate;
	uint32_t cap;           /* slots in tab: a power of two, at least twice the clients */
	struct admit_src tab[]; /* htab.h's: linear probing, no tombstones */
};

/* The key of a peer address (AF_INET or AF_INET6; anything else is one key of its own).  An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d, a v4 client on a dual-stack socket) has the key of
 * the IPv4 address: one client is one source whichever socket it reached. */
void admit_key(const struct sockaddr_storage *ss, struct admit_key *k);
/* The key of the block of prefix4 bits (IPv4, and IPv4-mapped IPv6) or prefix6 bits (IPv6)
 * that holds the address: one home's IPv6 /64 is one source (OpenSSH's PerSourceNetBlockSize).
 * A prefix of 0, or one longer than the address, keeps the whole address. */
void admit_key_prefix(const struct sockaddr_storage *ss, int prefix4, int prefix6,
    struct admit_key *k);
/* A hash of the key (FNV-1a), for tables keyed by source. */
uint32_t admit_hash(const struct admit_key *k);
/* Bytes an admit state needs for max_clients concurrent sessions. */
size_t admit_size(int max_clients, int max_per_source);
/* Sets up zeroed memory of admit_size() bytes; the bucket starts full. */
void admit_init(struct admit *a, int max_clients, int max_per_source, int max_rate);
/* New limits (a reload): the sources counted stay counted; the bucket starts full again when the
 * rate changes.  A per-source limit may change only between non-zero values (the table is
 * sized for one at init). */
void admit_set_limits(struct admit *a, int max_per_source, int max_rate);
/* Whether a connection from k may start a session at now_ms.  ADMIT_OK also counts it: every
 * ADMIT_OK must be matched by one admit_release when its session ends.  A refused connection
 * takes no token from the bucket and is not counted. */
enum admit_verdict admit_check(struct admit *a, const struct admit_key *k, int64_t now_ms);
void admit_release(struct admit *a, const struct admit_key *k);
/* The two halves of admit_check, for a client whose address is known only later (from a PROXY
 * header): the rate when the connection is accepted, the source once its address is known.
 * admit_take_source counts k on ADMIT_OK, as admit_check does. */
enum admit_verdict admit_take_rate(struct admit *a, int64_t now_ms);
enum admit_verdict admit_take_source(struct admit *a, const struct admit_key *k);
/* Empties the per-source table (the rate is kept), and counts k once more whatever the limit:
 * together, a rebuild of the table from the claims held. */
void admit_clear(struct admit *a);
void admit_add(struct admit *a, const struct admit_key *k);
/* Concurrent sessions counted for k. */
unsigned admit_count(const struct admit *a, const struct admit_key *k);

/* Sets b full for rate tokens a second. */
void admit_bucket_init(struct admit_bucket *b, int rate);
/* Takes one token at now_ms: 1, or 0 when the bucket is empty (nothing taken).  A clock that
 * steps back refills nothing. */
int admit_bucket_take(struct admit_bucket *b, int rate, int64_t now_ms);

#endif
