# upgrader — see README.md. `make demo` and `make test` work on a fresh machine.
GO      ?= go
BIN     := bin/upgrader
PROCEDURE ?= pom-3.1.1-sp1-upgrade
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Customer servers run old glibc: the binary is static.
export CGO_ENABLED := 0
# `make install` lays upgrader out on a systemd server (deploy/); DESTDIR
# stages it in a directory instead (packaging, tests). The paths are the ones
# deploy/upgrader.service names.
DESTDIR ?=
SBINDIR     := /usr/local/sbin
UNITDIR     := /etc/systemd/system
TMPFILESDIR := /usr/lib/tmpfiles.d
CONFDIR     := /etc/upgrader
DOCDIR      := /usr/local/share/doc/upgrader
STATEDIR    := /var/lib/upgrader
# Act on the running systemd only for a live install (no DESTDIR) on a host
# whose PID 1 is systemd (/run/systemd/system exists: sd_booted(3)).
LIVE_SYSTEMD = [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]

.PHONY: all build deps test lint demo demo-daemon bench faults fuzz clean install uninstall package

all: build

build:
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/upgrader

deps:
	@.ci/deps

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./... ./testdata/simhost/... ./testdata/sshd/... ./testdata/mppbench/... ./testdata/history/... ./testdata/resumebench/... ./testdata/dbbench/... ./testdata/pgtest/... ./testdata/lossyfs/... ./testdata/testenv/...

# lossyfs's own tests look at every lossy mount of the machine (stale ones
# are detached): they run after the rest, never beside the power-cut sweep's
# live mounts. The package timeout is set, not go test's default 10 min: the
# longest package (cmd/upgrader, ~6 min here beside the others) must not
# fail a passing run on a slower machine; a hang still ends the run.
test: deps build lint
	$(GO) test -count=1 -timeout 25m ./... ./testdata/simhost/... ./testdata/sshd/... ./testdata/testenv/...
	$(GO) test -count=1 ./testdata/lossyfs/...

demo: build
	@testdata/demo.sh $(BIN) $(PROCEDURE)

demo-daemon: build
	@testdata/demo-daemon.sh $(BIN)

# Engine cost per step against the fsync floor of the same disk, measured
# side by side in one run.
bench: build
	@testdata/bench.sh

# The fault-injection and hostile-input suite at full size, ending with one
# line per family (see README "Reliability"); `make test` runs a sample.
faults: deps build
	@testdata/faults.sh

# Every fuzz target for a bounded time (FUZZTIME each); seed corpora are
# checked in under each package's testdata/fuzz.
FUZZTIME ?= 20s
fuzz:
	$(GO) test ./orchestrator/ -run '^$$' -fuzz '^FuzzParseVersion$$' -fuzztime $(FUZZTIME)
	$(GO) test ./orchestrator/profile/ -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./orchestrator/api/ -run '^$$' -fuzz '^FuzzDecodeRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./orchestrator/api/ -run '^$$' -fuzz '^FuzzServeHTTP$$' -fuzztime $(FUZZTIME)
	$(GO) test ./steps/ -run '^$$' -fuzz '^FuzzSetMPPParams$$' -fuzztime $(FUZZTIME)
	$(GO) test ./steps/ -run '^$$' -fuzz '^FuzzArchiveEntryName$$' -fuzztime $(FUZZTIME)
	$(GO) test ./steps/ -run '^$$' -fuzz '^FuzzHelpArchive$$' -fuzztime $(FUZZTIME)
	$(GO) test ./steps/ -run '^$$' -fuzz '^FuzzCheckBackupTar$$' -fuzztime $(FUZZTIME)
	$(GO) test ./steps/bundle/ -run '^$$' -fuzz '^FuzzParseLogTime$$' -fuzztime $(FUZZTIME)

# The site's own $(CONFDIR)/site.yaml is never installed, so never
# overwritten: only the examples beside it are.
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/upgrader
	install -D -m 0644 deploy/upgrader.service $(DESTDIR)$(UNITDIR)/upgrader.service
	install -D -m 0644 deploy/upgrader.tmpfiles $(DESTDIR)$(TMPFILESDIR)/upgrader.conf
	install -D -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -d -m 0750 $(DESTDIR)$(CONFDIR)
	install -m 0644 deploy/site.yaml.example deploy/site-pc.yaml.example $(DESTDIR)$(CONFDIR)/
	@if $(LIVE_SYSTEMD); then \
		systemctl daemon-reload && systemd-tmpfiles --create $(TMPFILESDIR)/upgrader.conf; \
	else \
		echo "systemd not reloaded (DESTDIR set, or systemd is not PID 1 here): on the server run 'systemctl daemon-reload'"; \
	fi
	@[ -e $(DESTDIR)$(CONFDIR)/site.yaml ] || echo "next: write $(CONFDIR)/site.yaml from $(CONFDIR)/site.yaml.example, check it with 'upgrader plan --profile $(CONFDIR)/site.yaml', then 'systemctl enable --now upgrader'"

# Removes what install put in place. Kept: $(CONFDIR)/site.yaml (and the
# directory holding it) and $(STATEDIR), the record of every run. Refused
# while the daemon runs: stop it once its run is done.
uninstall:
	@if $(LIVE_SYSTEMD); then \
		if systemctl is-active --quiet upgrader.service; then \
			echo "upgrader.service is running: stop it first ('systemctl disable --now upgrader')" >&2; exit 1; \
		fi; \
		systemctl disable --quiet upgrader.service 2>/dev/null || true; \
	fi
	rm -f $(DESTDIR)$(SBINDIR)/upgrader \
		$(DESTDIR)$(UNITDIR)/upgrader.service $(DESTDIR)$(UNITDIR)/multi-user.target.wants/upgrader.service \
		$(DESTDIR)$(TMPFILESDIR)/upgrader.conf $(DESTDIR)$(DOCDIR)/README.md \
		$(DESTDIR)$(CONFDIR)/site.yaml.example $(DESTDIR)$(CONFDIR)/site-pc.yaml.example
	@rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true
	@rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || true
	@if $(LIVE_SYSTEMD); then systemctl daemon-reload; \
	else echo "systemd not reloaded (DESTDIR set, or systemd is not PID 1 here): on the server run 'systemctl daemon-reload'"; fi
	@echo "kept: $(STATEDIR) (the record of every run) and $(CONFDIR)/site.yaml if present"

# The .deb and .rpm (deploy/package, nfpm as a library) in $(DIST). Their
# version orders by commit count: each commit's packages upgrade the last.
DIST       ?= dist
PKGVERSION ?= 0.$(shell git rev-list --count HEAD 2>/dev/null || echo 0)
package: build
	$(GO) run ./deploy/package -bin $(BIN) -version $(PKGVERSION) -out $(DIST)

clean:
	rm -rf bin dist
