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
#   make flake RUNS=3    the system tests RUNS times in both modes under stress-ng; lists each failure
#   make soak SOAK_S=600 1,000 clients for SOAK_S seconds per mode; errors, leaks, zombies, the store

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

# The source tree shows the programs: src/lib/ is what several programs link, and each program's
# own files sit in a folder named after it.  Each program links only the shared modules it uses.
LIB_D   := src/lib
LIB_I   := -I$(LIB_D)
define objs
$(patsubst src/%.c,$(OBJ)/%.o,$(1))
endef
lib = $(patsubst %,$(OBJ)/lib/%.o,$(1))

MPECHOD_O := $(call objs,$(wildcard src/mpechod/*.c)) $(call lib,log log_sink io net sig record rec_text cidr num htab)
MPECHO_O  := $(call objs,$(wildcard src/mpecho/*.c)) $(call lib,log io net sig dial)
BENCH_O   := $(call objs,$(wildcard src/mpecho-bench/*.c)) $(call lib,log io net sig dial num)
# mpecho-store reads JSON with Jansson and gzip with zlib; mstore-gen writes big stores for
# measuring it (not installed).
MSTORE_LIB_O := $(call objs,$(patsubst %,src/mpecho-store/%.c,mstore_src mstore_rec mstore_tab \
	mstore_filt)) $(call lib,record rec_text cidr htab)
MSTORE_O  := $(call objs,$(filter-out %/mstore_gen.c,$(wildcard src/mpecho-store/*.c))) \
	$(call lib,log io sig record rec_text cidr num htab)

# mpecho-top reads mpechod's shared memory through the server's own headers and readers.
TOP_O     := $(call objs,$(wildcard src/mpecho-top/*.c)) $(call objs,$(patsubst %,src/mpechod/%.c,\
	arena scoreboard figures spare)) $(call lib,log io net num)

PROGS := $(BIN)/mpechod $(BIN)/mpechod-dynamic $(BIN)/mpecho $(BIN)/mpecho-bench $(BIN)/mpecho-store \
	$(BIN)/mpecho-top

.PHONY: all clean install test unit system system-san examples bench deps lint fuzz flake soak
all: $(PROGS) $(BIN)/mpechod-hooks
ifneq ($(SANITIZE),1)
	@mkdir -p bin && for p in $(notdir $(PROGS)); do ln -sf ../$(BIN)/$$p bin/$$p; done
endif

$(OBJ)/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LIB_I) -c -o $@ $<

# mpechod is linked statically, as a static PIE so that address randomisation still applies
# (STATIC=0 links it dynamically): a fork then copies no shared-library mappings and a session
# dirties no relocated library pages, which makes both the fork per connection and the memory
# per held connection smaller (see bench/).  The sanitizers need the dynamic runtime.
STATIC ?= 1
ifeq ($(SANITIZE),1)
STATIC := 0
endif
SERVER_LDFLAGS := $(if $(filter 1,$(STATIC)),-static-pie)

$(BIN)/mpechod: $(MPECHOD_O)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $(SERVER_LDFLAGS) -o $@ $^ $(LDLIBS)

# The same server linked dynamically, for valgrind, which cannot follow malloc in a static
# binary (tests/system/test_valgrind.py).
$(BIN)/mpechod-dynamic: $(MPECHOD_O)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# The server with sandbox.c's test hook (tests/system/test_sandbox.py): a session, pool process,
# store or datagram process that sees "MPECHO-TEST-SANDBOX <role> <call>" makes that forbidden
# call.  Never installed.
$(OBJ)/mpechod/sandbox_hooks.o: src/mpechod/sandbox.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DMPECHO_TEST_HOOKS $(LIB_I) -c -o $@ $<

$(BIN)/mpechod-hooks: $(filter-out %/sandbox.o,$(MPECHOD_O)) $(OBJ)/mpechod/sandbox_hooks.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $(SERVER_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/mpecho: $(MPECHO_O)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/mpecho-bench: $(BENCH_O)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS) -lm

$(BIN)/mpecho-store: $(MSTORE_O)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS) -ljansson -lz

$(BIN)/mpecho-top: $(TOP_O)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(OBJ)/mpecho-top/%.o: src/mpecho-top/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LIB_I) -Isrc/mpechod -c -o $@ $<

$(BIN)/mstore-gen: $(OBJ)/mpecho-store/mstore_gen.o $(OBJ)/lib/record.o $(OBJ)/lib/rec_text.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests (Criterion) for the pure modules.
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BIN)/unit_%,$(wildcard tests/unit/test_*.c))
UNIT_I := $(addprefix -I,$(wildcard src/*))

$(OBJ)/unit_%.o: tests/unit/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(UNIT_I) -c -o $@ $<

D := $(OBJ)/mpechod
$(BIN)/unit_test_record: $(OBJ)/unit_test_record.o $(call lib,record rec_text)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_rec_text: $(OBJ)/unit_test_rec_text.o $(call lib,rec_text)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

# rec_text.c and its test once more without the SSE2 paths, so that the portable code other
# machines run is tested here too, against the same reference.
UNIT_TESTS += $(BIN)/unit_test_rec_text_portable
$(OBJ)/rec_text_portable/rec_text.o: src/lib/rec_text.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LIB_I) -DREC_TEXT_PORTABLE -c -o $@ $<
$(OBJ)/rec_text_portable/unit_test.o: tests/unit/test_rec_text.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(UNIT_I) -DREC_TEXT_PORTABLE -c -o $@ $<
$(BIN)/unit_test_rec_text_portable: $(OBJ)/rec_text_portable/unit_test.o \
		$(OBJ)/rec_text_portable/rec_text.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_opts: $(OBJ)/unit_test_opts.o $(D)/opts.o $(call lib,num cidr)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_hist: $(OBJ)/unit_test_hist.o $(OBJ)/mpecho-bench/hist.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion -lm

$(BIN)/unit_test_procfs: $(OBJ)/unit_test_procfs.o $(OBJ)/mpecho-bench/procfs.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_admit: $(OBJ)/unit_test_admit.o $(D)/admit.o $(call lib,htab)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_proxy: $(OBJ)/unit_test_proxy.o $(D)/proxy.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_cidr: $(OBJ)/unit_test_cidr.o $(call lib,cidr)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_dgguard: $(OBJ)/unit_test_dgguard.o $(D)/dgguard.o $(D)/admit.o $(call lib,htab)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_spare: $(OBJ)/unit_test_spare.o $(D)/spare.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_store_buf: $(OBJ)/unit_test_store_buf.o $(D)/store_buf.o $(call lib,record rec_text htab)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

# receipt.c once more, with the wait after a store's death cut to 300 ms for its unit test.
$(OBJ)/unit_receipt_lost.o: src/mpechod/receipt.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LIB_I) -DRECEIPT_LOST_MS=300 -c -o $@ $<

$(BIN)/unit_test_receipt: $(OBJ)/unit_test_receipt.o $(OBJ)/unit_receipt_lost.o $(D)/receipt_q.o \
	$(D)/store_buf.o $(call lib,record rec_text io htab)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_store_wb: $(OBJ)/unit_test_store_wb.o $(D)/store_wb.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_mstore: $(OBJ)/unit_test_mstore.o $(MSTORE_LIB_O)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion -ljansson -lz

$(BIN)/unit_test_sd: $(OBJ)/unit_test_sd.o $(D)/sd.o $(call lib,num)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_user: $(OBJ)/unit_test_user.o $(D)/user.o $(call lib,num)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_log: $(OBJ)/unit_test_log.o $(call lib,log)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_htab: $(OBJ)/unit_test_htab.o $(call lib,htab)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_log_sink: $(OBJ)/unit_test_log_sink.o $(call lib,log_sink log)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_sandbox: $(OBJ)/unit_test_sandbox.o $(D)/sandbox.o $(call lib,log_sink log)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_metrics: $(OBJ)/unit_test_metrics.o $(D)/metrics_http.o $(D)/metrics_text.o \
		$(D)/figures.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_conf: $(OBJ)/unit_test_conf.o $(D)/conf.o $(D)/opts.o $(call lib,num cidr)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_upgrade: $(OBJ)/unit_test_upgrade.o $(D)/upgrade.o $(call lib,num)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

$(BIN)/unit_test_penalty: $(OBJ)/unit_test_penalty.o $(D)/penalty.o $(call lib,htab)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcriterion

deps:
	@scripts/deps.sh

# libFuzzer targets (clang), each run for FUZZ_SECONDS from the committed corpus; new inputs go
# to build-fuzz/, not into the corpus.
FUZZ_SECONDS ?= 15
FUZZ_CFLAGS = -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	$(UNIT_I) $(CFLAGS)

build-fuzz/fuzz_opts: fuzz/fuzz_opts.c src/mpechod/opts.c src/mpechod/opts.h src/lib/num.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_opts.c src/mpechod/opts.c src/lib/num.c src/lib/cidr.c

build-fuzz/fuzz_record: fuzz/fuzz_record.c src/lib/record.c src/lib/record.h src/lib/rec_text.c \
		src/lib/rec_text.h tests/unit/rec_text_ref.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_record.c src/lib/record.c src/lib/rec_text.c

build-fuzz/fuzz_proxy: fuzz/fuzz_proxy.c src/mpechod/proxy.c src/mpechod/proxy.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_proxy.c src/mpechod/proxy.c

build-fuzz/fuzz_cidr: fuzz/fuzz_cidr.c src/lib/cidr.c src/lib/cidr.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_cidr.c src/lib/cidr.c

build-fuzz/fuzz_metrics_http: fuzz/fuzz_metrics_http.c src/mpechod/metrics_http.c \
		src/mpechod/metrics_http.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_metrics_http.c src/mpechod/metrics_http.c

build-fuzz/fuzz_conf: fuzz/fuzz_conf.c src/mpechod/conf.c src/mpechod/conf.h src/mpechod/opts.c \
		src/lib/num.c src/lib/cidr.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_conf.c src/mpechod/conf.c src/mpechod/opts.c \
		src/lib/num.c src/lib/cidr.c

MSTORE_FUZZ_SRC := $(patsubst %,src/mpecho-store/%.c,mstore_rec mstore_filt mstore_tab) \
	src/lib/record.c src/lib/rec_text.c src/lib/cidr.c src/lib/htab.c
build-fuzz/fuzz_mstore: fuzz/fuzz_mstore.c $(MSTORE_FUZZ_SRC) src/mpecho-store/mstore_rec.h \
		src/mpecho-store/mstore_filt.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_mstore.c $(MSTORE_FUZZ_SRC) -ljansson

fuzz: build-fuzz/fuzz_opts build-fuzz/fuzz_record build-fuzz/fuzz_mstore build-fuzz/fuzz_proxy \
		build-fuzz/fuzz_cidr build-fuzz/fuzz_metrics_http build-fuzz/fuzz_conf
	@for t in opts record mstore proxy cidr metrics_http conf; do \
		mkdir -p build-fuzz/new-$$t; \
		build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=0 \
			build-fuzz/new-$$t fuzz/corpus/$$t 2>build-fuzz/$$t.log \
			|| { tail -40 build-fuzz/$$t.log; exit 1; }; \
		tail -1 build-fuzz/$$t.log; \
	done

# Static analysis of src/: both must be silent.
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --std=c11 \
		--inline-suppr -D_GNU_SOURCE $(UNIT_I) src/
	clang-tidy --quiet src/*/*.c -- -std=c11 -D_GNU_SOURCE $(UNIT_I)

unit: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do $$t --jobs 1 || exit 1; done

# The suite runs again with every test server in prefork mode (MPECHO_SERVER_ARGS; the tests
# that are about fork mode's processes are marked fork_only and skipped there).
system: all
	MPECHO_BIN=$(CURDIR)/$(BIN) $(PYTEST) -q tests/system
	MPECHO_BIN=$(CURDIR)/$(BIN) MPECHO_SERVER_ARGS=--prefork $(PYTEST) -q tests/system

# The system tests RUNS times in both modes under stress-ng --cpu (one worker a core); a list of
# every test that failed at least once, with its assertion line (scripts/flake.sh).  TESTS
# narrows it (e.g. TESTS=tests/system/test_hardening.py).
RUNS  ?= 3
TESTS ?= tests/system
flake: all
	RUNS=$(RUNS) MPECHO_BIN=$(CURDIR)/$(BIN) PYTEST="$(PYTEST)" scripts/flake.sh $(TESTS)

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

# 1,000 clients for SOAK_S seconds against each mode with the store on; fails on any error, a
# master or store that grows, a zombie, or a store that mpecho-store check rejects (bench/soak.sh).
SOAK_S ?= 600
soak: all
	SOAK_S=$(SOAK_S) bench/soak.sh

install: all install-contrib
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(BIN)/mpechod $(DESTDIR)$(SBINDIR)/mpechod
	for p in $(filter-out mpechod mpechod-dynamic,$(notdir $(PROGS))); do install -m 755 $(BIN)/$$p $(DESTDIR)$(BINDIR)/$$p; done
	install -m 644 man/mpechod.8 $(DESTDIR)$(MANDIR)/man8/mpechod.8
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/

# systemd units, the logrotate snippet, the xinetd service, the sysusers.d line and
# /etc/mpecho/mpechod.conf (every key commented out: a conffile in the package), with the
# server's installed path filled in for @SBINDIR@ and the configuration's for @SYSCONFDIR@.
CONTRIB_UNITS := mpechod.service mpechod.socket mpechod-inetd.socket mpechod-inetd@.service
.PHONY: install-contrib
install-contrib:
	@mkdir -p $(OUT)/contrib
	for f in $(CONTRIB_UNITS) mpecho.logrotate mpecho.xinetd; do \
		sed 's|@SBINDIR@|$(SBINDIR)|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' contrib/$$f \
			>$(OUT)/contrib/$$f || exit 1; done
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSCONFDIR)/logrotate.d \
		$(DESTDIR)$(SYSCONFDIR)/xinetd.d $(DESTDIR)$(SYSUSERSDIR)
	install -m 644 $(CONTRIB_UNITS:%=$(OUT)/contrib/%) $(DESTDIR)$(SYSTEMDUNITDIR)/
	install -m 644 $(OUT)/contrib/mpecho.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/mpecho
	install -m 644 $(OUT)/contrib/mpecho.xinetd $(DESTDIR)$(SYSCONFDIR)/xinetd.d/mpecho
	install -m 644 contrib/mpecho.sysusers $(DESTDIR)$(SYSUSERSDIR)/mpecho.conf
	install -d $(DESTDIR)$(SYSCONFDIR)/mpecho
	install -m 644 contrib/mpechod.conf $(DESTDIR)$(SYSCONFDIR)/mpecho/mpechod.conf

clean:
	rm -rf build build-san build-fuzz bin
	$(MAKE) -C examples clean

-include $(wildcard build/obj/*.d build/obj/*/*.d build-san/obj/*.d build-san/obj/*/*.d)
