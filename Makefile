# Fileward. `make run` runs the agent on config.example.yaml; `make test` runs every check.
GO        ?= go
BIN       := bin/fileward
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

.PHONY: all build run test vet staticcheck lint unit bench bench-smoke e2e fuzz cross clean package

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./agent/cmd/fileward

run: build
	./$(BIN) run -c config.example.yaml

test: vet staticcheck lint unit bench-smoke

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
	bash -o pipefail -c '$(GO) test -race -json -timeout 15m ./... | ./bin/testreport'
	# The collector's crash test moves 10k events under -race (the race
	# detector slows kfake and bulktest ~30x); here it moves the full 50k.
	$(GO) test -count=1 -run '^TestEndToEndCrash$$' ./agent/collect/

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
	./agent/spool:FuzzRecover ./agent/spool:FuzzScanSegment ./agent/procfs:FuzzParseStat ./agent/capture/fanotify:FuzzDecode ./agent/capture/eslogger:FuzzParse ./agent/capture/eslogger:FuzzParseMatchesReference \
	./sinks/elasticsearch:FuzzClassify ./sinks/elasticsearch/bulktest:FuzzBulk ./agent/collect:FuzzToEvent
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "== $$pkg $$fn ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

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
