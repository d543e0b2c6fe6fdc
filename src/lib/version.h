/*
 * version.h - the version every mpecho program reports with --version.
 */
#ifndef MPECHO_VERSION_H
#define MPECHO_VERSION_H

/* A build may set its own (make CFLAGS=-DMPECHO_VERSION='"0.1.0+x"'): the upgrade test's. */
#ifndef MPECHO_VERSION
#define MPECHO_VERSION "0.1.0"
#endif

#endif
