# Fileward. `make run` runs the agent on config.example.yaml; `make test` runs every check.
GO        ?= go
BIN       := bin/fileward
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

EBPF_DIR  := agent/capture/ebpf

.PHONY: generate generate-check vmlinux all build run test vet staticcheck lint unit bench bench-smoke e2e fuzz cross clean mutation cover rules-report package

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./agent/cmd/fileward

run: build
	./$(BIN) run -c config.example.yaml

test: vet staticcheck lint generate-check unit bench-smoke

# The eBPF source's BPF objects and Go bindings (bpf2go, pinned in go.mod as a
# tool) from $(EBPF_DIR)/bpf/fileward.bpf.c, with Debian's clang and
# llvm-strip, against the committed bpf/vmlinux.h. The output is committed so
# that `go build` needs no clang.
generate:
	$(GO) generate ./$(EBPF_DIR)

# make test: regenerate and fail if the result differs from what is committed
# (clang 14's output is byte-identical across runs and checkout paths; a
# different clang may differ, which this check reports as a failure to look at,
# not a pass).
generate-check: generate
	@git diff --exit-code --stat -- $(EBPF_DIR) || { echo "the committed BPF objects differ from make generate's: commit the regenerated files (or use Debian bookworm's clang 14)"; exit 1; }
	@echo "BPF objects match make generate"

# Refresh bpf/vmlinux.h from the running kernel's BTF (bpftool). The programs
# are CO-RE: the header only has to declare the types and fields they use.
vmlinux:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $(EBPF_DIR)/bpf/vmlinux.h

vet:
	$(GO) vet ./...
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) vet ./...

staticcheck:
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$(STATICCHECK) ./...

# The import direction is a fact we check: schema/ and sinks/ never import agent/.
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	@bad=$$($(GO) list -deps ./schema/... ./sinks/... | grep '^github.com/fileward/fileward/agent' || true); \
	if [ -n "$$bad" ]; then echo "schema/ or sinks/ imports agent/: $$bad"; exit 1; fi; echo "import direction ok"

# go test -json through testreport: plain go test output, then every skipped
# test with its reason and the closing "tests: N passed, N failed, N skipped".
# A skip for anything but a platform reason (not root, not this OS) fails.
unit:
	$(GO) build -o bin/testreport ./internal/testreport
	bash -o pipefail -c '$(GO) test -race -json -timeout 15m $$($(GO) list ./... | grep -v "/agent/capture/ebpf$$") | ./bin/testreport'
	# eBPF capture sees the whole machine, so its tests run alone: beside
	# another package's floods (fanotify's 10,000 opens) the reader under
	# -race falls behind and the tests' events are lost (counted).
	bash -o pipefail -c '$(GO) test -race -json -timeout 10m ./agent/capture/ebpf | ./bin/testreport'
	# The collector's crash and rebalance tests move 10k and 20k events
	# under -race (the race detector slows kfake and bulktest ~30x); here
	# they move the full 50k and 100k.
	$(GO) test -count=1 -run '^(TestEndToEndCrash|TestRebalanceAndCrash)$$' ./agent/collect/

# Every benchmark of issue 7 (as root, about 5 minutes): var/bench/results.json.
# The Elasticsearch row's BulkIndexer baseline needs -tags bulkindexer.
bench:
	$(GO) build -tags bulkindexer -o bin/fwbench ./bench/cmd/fwbench
	./bin/fwbench -go $(GO)

# The same harness on small inputs (< 60 s): figures are not asserted, but a
# broken row fails. Results in var/bench/smoke/.
bench-smoke:
	$(GO) build -o bin/fwbench ./bench/cmd/fwbench
	./bin/fwbench -smoke -go $(GO)

# Every parser's fuzz target, FUZZTIME each (default 60s).
FUZZTIME ?= 60s
FUZZ_TARGETS := ./schema:FuzzEncode ./schema:FuzzDecodeECS ./sinks:FuzzDecodeBatch ./agent/config:FuzzParse \
	./agent/spool:FuzzRecover ./agent/spool:FuzzScanSegment ./agent/spool:FuzzDecodePayload ./agent/procfs:FuzzParseStat ./agent/capture/fanotify:FuzzDecode ./agent/capture/ebpf:FuzzDecode ./agent/capture/eslogger:FuzzParse ./agent/capture/eslogger:FuzzParseMatchesReference ./agent/capture/eslogger:FuzzUnescape \
	./sinks/elasticsearch:FuzzClassify ./sinks/elasticsearch/bulktest:FuzzBulk ./agent/collect:FuzzToEvent ./tools/rulesreport:FuzzQuery ./tools/rulesreport:FuzzCheck
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "== $$pkg $$fn ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

# docs/detection-rules.md: which of Elastic's prebuilt macOS/Linux file and
# process rules Fileward's documents satisfy. RULES is a checkout of
# elastic/detection-rules (not part of this repository: Elastic License 2.0).
# The macOS documents come from `fileward convert` over the eslogger fixtures;
# the Linux ones from the real agent on fanotify (refreshed here when run as
# root, else the committed sample is used).
RULES ?=
RULES_COMMIT ?= $(shell git -C "$(RULES)" rev-parse HEAD 2>/dev/null)
RULES_ESLOGGER := $(wildcard testdata/fixtures/eslogger/real/*.ndjson testdata/fixtures/eslogger/synthesized/*.ndjson) agent/capture/eslogger/testdata/extra.ndjson
RULES_LINUX := tools/rulesreport/testdata/linux-fanotify.ndjson
rules-report: build
	@test -n "$(RULES)" || { echo "usage: make rules-report RULES=/path/to/detection-rules [RULES_COMMIT=sha]"; exit 2; }
	@test -n "$(wildcard testdata/fixtures/eslogger/real/*.ndjson)" || { echo "rules-report: no eslogger fixtures under testdata/fixtures/eslogger"; exit 1; }
	$(GO) build -o bin/rulesreport ./tools/rulesreport/cmd/rulesreport
	@mkdir -p var/rules-report
	./$(BIN) convert --from eslogger --host-name mac-sample --host-id mac-sample $(RULES_ESLOGGER) > var/rules-report/macos.ndjson 2> var/rules-report/convert.log || { cat var/rules-report/convert.log; exit 1; }
	@if [ "$$(id -u)" = 0 ] && [ "$$(uname -s)" = Linux ]; then ./bin/rulesreport linux-sample -fileward $(BIN) -o $(RULES_LINUX); \
	  else echo "not root on Linux: using the committed $(RULES_LINUX)"; fi
	./bin/rulesreport report -rules "$(RULES)" -commit "$(RULES_COMMIT)" -o docs/detection-rules.md \
	  -docs "macOS: fileward convert --from eslogger (fixtures)=var/rules-report/macos.ndjson" \
	  -docs "Linux: fileward run, fanotify source=$(RULES_LINUX)" \
	  -default-stream logs-fileward.file-default -default-stream logs-fileward.process-default \
	  -compat-stream logs-endpoint.events.file-fileward -compat-stream logs-endpoint.events.process-fileward
	./bin/rulesreport check docs/detection-rules.md

# Statement coverage per package, counting what the package tests reach and
# what the process-level tests reach through a -cover build of the binary
# (internal/testbin). Writes var/cover/percent.txt and the table of
# docs/testing.md's "Coverage" section (internal/testreport -cover).
cover:
	rm -rf var/cover && mkdir -p var/cover/unit var/cover/bin
	FILEWARD_BIN_COVERDIR=$(CURDIR)/var/cover/bin $(GO) test -count=1 -timeout 30m -cover -covermode=set \
	  -coverpkg=github.com/fileward/fileward/... ./... -args -test.gocoverdir=$(CURDIR)/var/cover/unit
	$(GO) tool covdata percent -i=var/cover/unit,var/cover/bin > var/cover/percent.txt
	$(GO) run ./internal/testreport -cover var/cover/percent.txt -doc docs/testing.md

# Mutation testing (gremlins v0.6.0, through go run: no binary to download)
# of the packages whose correctness is the product. Efficacy = killed mutants
# out of those the tests cover; the gate is 85% per package. Slow: minutes to
# hours on 2 cores, so it is not part of make test. Results in var/mutation/;
# docs/testing.md records the last run. MUTATION_PKGS narrows it.
# gremlins mutates the whole tree under the path it is given; -E '/' keeps
# each run to the named package (its subpackages are listed on their own).
# gremlins has no -run: the build tag `mutation` leaves out the tests that
# run the real binary (`//go:build !mutation`, agent/collect's process-level
# runs of a minute each), which reach the same code through a child process
# whose coverage gremlins does not see; make test runs them.
GREMLINS ?= $(GO) run github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0
MUTATION_PKGS ?= ./agent/config ./schema ./sinks ./sinks/file ./sinks/kafka ./sinks/elasticsearch ./agent/pipeline ./agent/spool ./agent/ship ./agent/collect
mutation:
	@mkdir -p var/mutation
	@for p in $(MUTATION_PKGS); do name=$$(echo $$p | tr / _ | sed 's/^\._//'); \
	  echo "== $$p"; \
	  $(GREMLINS) unleash --workers 2 --timeout-coefficient 10 --threshold-efficacy 85 -E '/' --tags mutation \
	    -o var/mutation/$$name.json $$p > var/mutation/$$name.txt 2>&1; rc=$$?; \
	  tail -n 6 var/mutation/$$name.txt; [ $$rc -eq 0 ] || fail="$$fail $$p"; done; \
	if [ -n "$$fail" ]; then echo "mutation efficacy below 85% (or gremlins failed) in:$$fail"; exit 1; fi

# End to end against real Kafka, Elasticsearch and Kibana (needs Docker; CI does not run it).
e2e:
	bash deploy/compose/e2e.sh

cross:
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o /dev/null ./agent/cmd/fileward
	GOOS=darwin GOARCH=amd64 CGO_ENABLED=0 $(GO) build -o /dev/null ./agent/cmd/fileward

# Release artifacts into dist/: .deb and .rpm (amd64, arm64; nfpm as a Go tool
# of deploy/packaging), .tar.gz for linux and darwin (amd64, arm64), SHA256SUMS.
# The version comes from git tags (deploy/packaging/version.sh).
package:
	GO=$(GO) OUT=dist deploy/packaging/package.sh

clean:
	rm -rf bin var dist
