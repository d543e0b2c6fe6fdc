/*
 * proxy.h - the PROXY protocol header (HAProxy's doc/proxy-protocol.txt), versions 1 and 2.
 *
 * With --proxy-protocol every connection starts with one header, which says whom the balancer
 * in front of mpechod relays.  proxy_parse reads it from the first bytes of the connection and
 * never guesses: the bytes are a v2 header (first byte CR, the 12-byte signature), a v1 header
 * (first byte 'P', "PROXY "), or invalid.  It is pure and incremental: call it on all the bytes
 * received so far, from the start of the connection, each time more arrive.
 *
 *  - PROXY_NEED_MORE: these bytes can still begin a valid header.  need is the total the
 *    buffer must reach before calling again, and no valid header that starts with these bytes
 *    is shorter, so reading up to need bytes never reads past the header.
 *  - PROXY_INVALID: close the connection; reason is a static string for the log.  It comes as
 *    soon as the bytes cannot begin a valid header ("GET / HTTP/1.0" fails at its first byte),
 *    and never for a prefix of a valid header.  Once INVALID, any longer input is INVALID;
 *    once OK, any longer input is OK with the same result.
 *  - PROXY_OK: len is the header's length, CRLF or TLVs included: consume exactly len bytes;
 *    what follows is the client's first data.
 *
 * Reading the header off a socket, two ways that both leave the first data in the socket:
 *  - byte-exact: from have = 0, read at most need - have bytes, add what came to have, and
 *    parse again, until OK or INVALID.  A header that arrives whole takes 3 reads for v2 (15,
 *    1, the rest) and 1 to 8 for v1, as need follows the fewest bytes each field can still
 *    take (15, 32, 38, 42, 45, 47 for the spec's TCP4 example);
 *  - peek: recv(MSG_PEEK) up to PROXY_HDR_MAX bytes, parse, and on OK read exactly len.  After
 *    NEED_MORE the socket stays readable, so poll alone would spin: wait a moment, or switch
 *    to byte-exact reads.
 * A late header is the caller's to time out (SO_RCVTIMEO, or poll with a deadline).
 *
 * The addresses: src is the client, dst the address it connected to.  Their family is AF_INET
 * or AF_INET6 when the header carries a TCP connection's addresses, and AF_UNSPEC when it
 * carries none that stands for the client: v2 LOCAL (the balancer's own health check), v1
 * "PROXY UNKNOWN", and v2 PROXY with an AF_UNSPEC, AF_UNIX or UDP address block (which the spec
 * lets a receiver treat as UNSPEC).  AF_UNSPEC means: use the connection's real addresses.
 *
 * Decisions (the spec leaves them to the receiver):
 *  - v1: at most 107 bytes, CRLF included; fields as the spec says, one space apart.  Addresses
 *    are what inet_pton accepts for the family named (so "::ffff:1.2.3.4" is a TCP6 address);
 *    a TCP4 address is also refused with leading zeros.  Ports are 0-65535 with no sign or
 *    leading zero.  "UNKNOWN" is followed by CRLF, or by a space and any bytes but CR and LF.
 *  - v2: at most PROXY_V2_MAX bytes in all (16 + 2048: room for every TLV in use); version 2;
 *    command LOCAL or PROXY; the family/protocol byte one of the seven the spec lists (0x00,
 *    0x11, 0x12, 0x21, 0x22, 0x31, 0x32), whatever the command.  PROXY needs a length that holds
 *    the family's addresses (12, 36, 216).  The TLVs after the addresses must fill the rest
 *    exactly, and a CRC32C TLV must be 4 bytes and match.  LOCAL's block, and PROXY's with
 *    family UNSPEC, is skipped unread, as the spec says to discard it.
 */
#ifndef MPECHO_PROXY_H
#define MPECHO_PROXY_H

#include <stddef.h>
#include <sys/socket.h>

/* The longest v1 header, CRLF included. */
#define PROXY_V1_MAX 107
/* The longest v2 header accepted: the 16-byte fixed part and at most 2048 bytes after it. */
#define PROXY_V2_MAX (16 + 2048)
/* A buffer of this size holds any header proxy_parse accepts. */
#define PROXY_HDR_MAX PROXY_V2_MAX

enum proxy_status { PROXY_OK, PROXY_NEED_MORE, PROXY_INVALID };

enum proxy_cmd {
	PROXY_CMD_LOCAL, /* v2 LOCAL, or v1 UNKNOWN */
	PROXY_CMD_PROXY, /* relayed: src and dst say for whom, unless AF_UNSPEC */
};

struct proxy_result {
	int version;                  /* 1 or 2; 0 while unknown */
	enum proxy_cmd cmd;           /* PROXY_OK */
	size_t len;                   /* PROXY_OK: the header's length, the bytes to consume */
	size_t need;                  /* PROXY_NEED_MORE: the least total length to wait for */
	const char *reason;           /* PROXY_INVALID: why, for the log */
	struct sockaddr_storage src;  /* PROXY_OK: the client; AF_UNSPEC: none given */
	struct sockaddr_storage dst;  /* PROXY_OK: the address it connected to, likewise */
};

/* Reads the header at the start of buf (len bytes received so far); see above. */
enum proxy_status proxy_parse(const unsigned char *buf, size_t len, struct proxy_result *out);

#endif
