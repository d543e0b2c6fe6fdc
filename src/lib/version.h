/*
 * version.h - the version every mpecho program reports with --version.
 */
#ifndef MPECHO_VERSION_H
#define MPECHO_VERSION_H

#define MPECHO_VERSION "0.1.0"

#endif
