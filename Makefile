# mpecho - a multi-process TCP echo service.
#
#   make                 build bin/mpechod, bin/mpecho, bin/mpecho-bench
#   make test            unit tests, system tests, and the system tests again under ASan+UBSan
#   make SANITIZE=1      build with AddressSanitizer and UndefinedBehaviorSanitizer (build-san/)
#   make STATIC=0        link mpechod dynamically (it is static by default)
#   make WERROR=1        warnings are errors (CI)
#   make install         honours PREFIX and DESTDIR
#   make examples        the process API walkthrough in examples/
#   make bench           the side-by-side comparison (bench/)

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
# Where make install puts contrib/'s service files (install-contrib).
SYSCONFDIR     ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR    ?= $(PREFIX)/lib/sysusers.d
CC      ?= cc
PYTEST  ?= /usr/bin/python3 -m pytest

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wpointer-arith -Wcast-qual -Wundef -Wvla
ifeq ($(WERROR),1)
WARN += -Werror
endif

ifeq ($(SANITIZE),1)
OUT := build-san
OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDSAN := -fsanitize=address,undefined
else
OUT := build
OPT := -O2 -g
LDSAN :=
endif

# The user's CFLAGS and LDFLAGS come last, so they win.
ALL_CFLAGS  = -std=c11 $(OPT) $(WARN) -MMD -MP $(CFLAGS)
ALL_LDFLAGS = $(LDSAN) $(LDFLAGS)

OBJ  := $(OUT)/obj
BIN  := $(OUT)/bin

COMMON  := log io net sig
SERVER  := master master_setup master_store master_pool session store record opts admit datagram \
	dgguard pool spare inetd sd user shared gate proxy cidr
CLIENT  := client
BENCHM  := bench bench_worker bench_flood bench_udp bench_report hist procfs

COMMON_O := $(COMMON:%=$(OBJ)/%.o)
SERVER_O := $(SERVER:%=$(OBJ)/%.o)

PROGS := $(BIN)/mpechod $(BIN)/mpechod-dynamic $(BIN)/mpecho \
	$(BIN)/mpecho-bench
# mpecho-store, the store read back (src/mstore*.c).
MSTORE  := mstore mstore_out mstore_list mstore_dump mstore_check mstore_follow mstore_stats \
	mstore_src mstore_rec mstore_tab mstore_filt cidr
MSTORE_LIB_O := $(patsubst %,$(OBJ)/%.o,mstore_src mstore_rec mstore_tab mstore_filt cidr) $(OBJ)/record.o
PROGS += $(BIN)/mpecho-store

.PHONY: all clean install test unit system system-san examples bench deps lint fuzz
all: $(PROGS)
ifneq ($(SANITIZE),1)
	@mkdir -p bin && for p in $(notdir $(PROGS)); do ln -sf ../$(BIN)/$$p bin/$$p; done
endif

$(OBJ)/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# mpechod is linked statically, as a static PIE so that address randomisation still applies
# (STATIC=0 links it dynamically): a fork then copies no shared-library mappings and a session
# dirties no relocated library pages, which makes both the fork per connection and the memory
# per held connection smaller (see bench/).  The sanitizers need the dynamic runtime.
STATIC ?= 1
ifeq ($(SANITIZE),1)
STATIC := 0
endif
SERVER_LDFLAGS := $(if $(filter 1,$(STATIC)),-static-pie)

$(BIN)/mpechod: $(SERVER_O) $(COMMON_O)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $(SERVER_LDFLAGS) -o $@ $^ $(LDLIBS)

# The same server linked dynamically, for valgrind, which cannot follow malloc in a static
# binary (tests/system/test_valgrind.py).
$(BIN)/mpechod-dynamic: $(SERVER_O) $(COMMON_O)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/mpecho: $(OBJ)/client.o $(OBJ)/dial.o $(COMMON_O)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# The bench takes only opts_number (and the version) from the server's opts.o.
$(BIN)/mpecho-bench: $(BENCHM:%=$(OBJ)/%.o) $(OBJ)/opts.o $(COMMON_O)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS) -lm

# mpecho-store reads JSON with Jansson and gzip with zlib; record.o formats times and strings,
# opts.o gives opts_number.  mstore-gen writes big stores for measuring it (not installed).
$(BIN)/mpecho-store: $(MSTORE:%=$(OBJ)/%.o) $(OBJ)/record.o $(OBJ)/opts.o $(COMMON_O)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS) -ljansson -lz

$(BIN)/mstore-gen: $(OBJ)/mstore_gen.o $(OBJ)/record.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests (Criterion) for the pure modules.
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BIN)/unit_%,$(wildcard tests/unit/test_*.c))

$(OBJ)/unit_%.o: tests/unit/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Isrc -c -o $@ $<

$(BIN)/unit_test_record: $(OBJ)/unit_test_record.o $(OBJ)/record.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_opts: $(OBJ)/unit_test_opts.o $(OBJ)/opts.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_hist: $(OBJ)/unit_test_hist.o $(OBJ)/hist.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion -lm

$(BIN)/unit_test_procfs: $(OBJ)/unit_test_procfs.o $(OBJ)/procfs.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_admit: $(OBJ)/unit_test_admit.o $(OBJ)/admit.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_proxy: $(OBJ)/unit_test_proxy.o $(OBJ)/proxy.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_cidr: $(OBJ)/unit_test_cidr.o $(OBJ)/cidr.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_dgguard: $(OBJ)/unit_test_dgguard.o $(OBJ)/dgguard.o $(OBJ)/admit.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_spare: $(OBJ)/unit_test_spare.o $(OBJ)/spare.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_mstore: $(OBJ)/unit_test_mstore.o $(MSTORE_LIB_O)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion -ljansson -lz

$(BIN)/unit_test_sd: $(OBJ)/unit_test_sd.o $(OBJ)/sd.o $(OBJ)/opts.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_user: $(OBJ)/unit_test_user.o $(OBJ)/user.o $(OBJ)/opts.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

deps:
	@scripts/deps.sh

# libFuzzer targets (clang), each run for FUZZ_SECONDS from the committed corpus; new inputs go
# to build-fuzz/, not into the corpus.
FUZZ_SECONDS ?= 15
FUZZ_CFLAGS = -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-Isrc $(CFLAGS)

build-fuzz/fuzz_opts: fuzz/fuzz_opts.c src/opts.c src/opts.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_opts.c src/opts.c

build-fuzz/fuzz_record: fuzz/fuzz_record.c src/record.c src/record.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_record.c src/record.c

build-fuzz/fuzz_proxy: fuzz/fuzz_proxy.c src/proxy.c src/proxy.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_proxy.c src/proxy.c

build-fuzz/fuzz_cidr: fuzz/fuzz_cidr.c src/cidr.c src/cidr.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_cidr.c src/cidr.c

MSTORE_FUZZ_SRC := $(patsubst %,src/%.c,mstore_rec mstore_filt mstore_tab record cidr)
build-fuzz/fuzz_mstore: fuzz/fuzz_mstore.c $(MSTORE_FUZZ_SRC) src/mstore_rec.h src/mstore_filt.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_mstore.c $(MSTORE_FUZZ_SRC) -ljansson

fuzz: build-fuzz/fuzz_opts build-fuzz/fuzz_record build-fuzz/fuzz_mstore build-fuzz/fuzz_proxy \
		build-fuzz/fuzz_cidr
	@for t in opts record mstore proxy cidr; do \
		mkdir -p build-fuzz/new-$$t; \
		build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=0 \
			build-fuzz/new-$$t fuzz/corpus/$$t 2>build-fuzz/$$t.log \
			|| { tail -40 build-fuzz/$$t.log; exit 1; }; \
		tail -1 build-fuzz/$$t.log; \
	done

# Static analysis of src/: both must be silent.
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --std=c11 \
		--inline-suppr -D_GNU_SOURCE src/
	clang-tidy --quiet src/*.c -- -std=c11 -D_GNU_SOURCE

unit: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do $$t --jobs 1 || exit 1; done

# The suite runs again with every test server in prefork mode (MPECHO_SERVER_ARGS; the tests
# that are about fork mode's processes are marked fork_only and skipped there).
system: all
	MPECHO_BIN=$(CURDIR)/$(BIN) $(PYTEST) -q tests/system
	MPECHO_BIN=$(CURDIR)/$(BIN) MPECHO_SERVER_ARGS=--prefork $(PYTEST) -q tests/system

system-san:
	$(MAKE) SANITIZE=1 all
	MPECHO_BIN=$(CURDIR)/build-san/bin MPECHO_SANITIZED=1 $(PYTEST) -q tests/system

test: deps
	$(MAKE) all examples unit lint fuzz
	$(MAKE) system-san
	$(MAKE) system

examples:
	$(MAKE) -C examples

bench: all
	bench/compare.sh

install: all install-contrib
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(BIN)/mpechod $(DESTDIR)$(SBINDIR)/mpechod
	for p in $(filter-out mpechod mpechod-dynamic,$(notdir $(PROGS))); do install -m 755 $(BIN)/$$p $(DESTDIR)$(BINDIR)/$$p; done
	install -m 644 man/mpechod.8 $(DESTDIR)$(MANDIR)/man8/mpechod.8
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/

# systemd units, the logrotate snippet, the xinetd service and the sysusers.d line, with the
# server's installed path filled in for @SBINDIR@.
CONTRIB_UNITS := mpechod.service mpechod.socket mpechod-inetd.socket mpechod-inetd@.service
.PHONY: install-contrib
install-contrib:
	@mkdir -p $(OUT)/contrib
	for f in $(CONTRIB_UNITS) mpecho.logrotate mpecho.xinetd; do \
		sed 's|@SBINDIR@|$(SBINDIR)|g' contrib/$$f >$(OUT)/contrib/$$f || exit 1; done
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSCONFDIR)/logrotate.d \
		$(DESTDIR)$(SYSCONFDIR)/xinetd.d $(DESTDIR)$(SYSUSERSDIR)
	install -m 644 $(CONTRIB_UNITS:%=$(OUT)/contrib/%) $(DESTDIR)$(SYSTEMDUNITDIR)/
	install -m 644 $(OUT)/contrib/mpecho.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/mpecho
	install -m 644 $(OUT)/contrib/mpecho.xinetd $(DESTDIR)$(SYSCONFDIR)/xinetd.d/mpecho
	install -m 644 contrib/mpecho.sysusers $(DESTDIR)$(SYSUSERSDIR)/mpecho.conf

clean:
	rm -rf build build-san build-fuzz bin
	$(MAKE) -C examples clean

-include $(wildcard build/obj/*.d build-san/obj/*.d)
