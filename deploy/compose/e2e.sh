#!/bin/sh
# End-to-end check against real Kafka and Elasticsearch (make e2e).
# Brings up the compose stack, lets the agent replay a recorded eslogger
# stream into Kafka, lets `fileward collect` move it into Elasticsearch, then
# checks that every event.id the agent emitted is in the data stream exactly
# once; it also SIGKILLs the collector, restarts it and checks again (a
# re-delivery must not duplicate anything). Exits non-zero on any mismatch.
# Needs docker (with compose), curl and jq. KEEP=1 leaves the stack running.
set -eu
cd "$(dirname "$0")"

for tool in docker curl jq; do
	command -v "$tool" >/dev/null 2>&1 || { echo "e2e: $tool is required" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "e2e: no Docker engine reachable" >&2; exit 2; }

ELASTICSEARCH=${ELASTICSEARCH:-http://127.0.0.1:9200}
DS=logs-fileward.file-default
TIMEOUT=${TIMEOUT:-300}
dc() { docker compose "$@"; }
out=$(mktemp -d)
cleanup() {
	if [ "${KEEP:-0}" != 1 ]; then dc down -v >/dev/null 2>&1 || true; fi
	rm -rf "$out"
}
trap cleanup EXIT

fail() { echo "e2e: FAIL: $*" >&2; dc logs --tail 50 collector agent >&2 || true; exit 1; }

echo "e2e: starting Kafka and Elasticsearch"
dc up -d --build --wait kafka elasticsearch
echo "e2e: starting collector, agent and Kibana"
dc up -d collector agent kibana

# The agent's file sink records every event it emitted; its event.ids are
# what Elasticsearch must hold. Wait until the file stops growing.
prev=-1
i=0
while :; do
	dc cp agent:/var/lib/fileward/events.ndjson "$out/events.ndjson" >/dev/null 2>&1 || true
	n=$( [ -f "$out/events.ndjson" ] && wc -l <"$out/events.ndjson" || echo 0 )
	if [ "$n" -gt 0 ] && [ "$n" -eq "$prev" ]; then break; fi
	prev=$n
	i=$((i + 5)); [ "$i" -lt "$TIMEOUT" ] || fail "agent wrote no events within ${TIMEOUT}s"
	sleep 5
done
jq -r '.event.id' "$out/events.ndjson" | sort -u >"$out/want"
want=$(wc -l <"$out/want")
echo "e2e: agent emitted $want distinct event.ids"
[ "$want" -gt 0 ] || fail "no events"

check() {
	i=0
	while :; do
		curl -fsS -XPOST "$ELASTICSEARCH/$DS/_refresh" >/dev/null 2>&1 || true
		got=$(curl -fsS "$ELASTICSEARCH/$DS/_count" 2>/dev/null | jq -r '.count // 0' || echo 0)
		[ "$got" -ge "$want" ] && break
		i=$((i + 3)); [ "$i" -lt "$TIMEOUT" ] || fail "$DS holds $got documents after ${TIMEOUT}s, want $want"
		sleep 3
	done
	[ "$got" -eq "$want" ] || fail "$DS holds $got documents, want exactly $want"
	# Every wanted id is there (ids query), and no id appears twice
	# (terms aggregation with min_doc_count 2 must be empty).
	q=$(jq -R -s '{size:0, track_total_hits:true, query:{ids:{values:(split("\n")|map(select(length>0)))}}}' "$out/want")
	found=$(curl -fsS -H 'Content-Type: application/json' "$ELASTICSEARCH/$DS/_search" -d "$q" | jq -r '.hits.total.value')
	[ "$found" -eq "$want" ] || fail "$found of $want event.ids found by _id"
	dups=$(curl -fsS -H 'Content-Type: application/json' "$ELASTICSEARCH/$DS/_search" \
		-d '{"size":0,"aggs":{"d":{"terms":{"field":"event.id","min_doc_count":2,"size":10}}}}' | jq -r '.aggregations.d.buckets | length')
	[ "$dups" -eq 0 ] || fail "$dups event.ids are indexed more than once"
}

check
echo "e2e: $want events in $DS, each exactly once"

# Crash the collector and reset its group to the beginning: everything is
# re-delivered, and _id = event.id must collapse every duplicate (409).
dc kill -s SIGKILL collector
sleep 15 # the dead member leaves the group after its session timeout (10s)
dc exec -T kafka /opt/kafka/bin/kafka-consumer-groups.sh --bootstrap-server localhost:9092 \
	--group fileward-collector --topic fileward-events --reset-offsets --to-earliest --execute >/dev/null
dc up -d collector
i=0
while :; do
	acked=$(curl -fsS http://127.0.0.1:9465/metrics 2>/dev/null | awk '/^fileward_collector_events_acked_total/ {print int($2)}')
	[ "${acked:-0}" -ge "$want" ] && break
	i=$((i + 3)); [ "$i" -lt "$TIMEOUT" ] || fail "re-delivery acknowledged ${acked:-0} of $want within ${TIMEOUT}s"
	sleep 3
done
check
echo "e2e: after SIGKILL and a full re-delivery, still $want events exactly once"
curl -fsS http://127.0.0.1:9465/metrics | grep -q '^fileward_collector_lag_messages' || fail "collector /metrics lacks the lag gauge"
curl -fsS http://127.0.0.1:9465/healthz | grep -q '^ok' || fail "collector /healthz is not ok"
echo "e2e: PASS"
