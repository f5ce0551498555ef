//go:build !mutation

package collect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// stuckMember is a consumer group member (raw group requests through
// franz-go) that joins once, with a long rebalance timeout, and then never
// rejoins: a member hung in a long pause. The coordinator holds every later
// rebalance open for it, so the other members sit in JoinGroup.
type stuckMember struct {
	cl       *kgo.Client
	memberID string
}

// joinStuck joins the group as a range-protocol consumer of the topic and
// syncs once; it returns once it is a member of the new generation.
func joinStuck(ctx context.Context, t *testing.T, brokers []string, rebalance time.Duration) *stuckMember {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	meta := (&kmsg.ConsumerMemberMetadata{Version: 0, Topics: []string{topic}}).AppendTo(nil)
	s := &stuckMember{cl: cl}
	for attempt := 0; ; attempt++ {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group = "fileward-collector"
		req.SessionTimeoutMillis = int32(rebalance / time.Millisecond)
		req.RebalanceTimeoutMillis = int32(rebalance / time.Millisecond)
		req.MemberID = s.memberID
		req.ProtocolType = "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", meta
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("stuck member: join: %v", err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			if errors.Is(err, kerr.MemberIDRequired) && attempt < 3 {
				s.memberID = resp.MemberID
				continue
			}
			t.Fatalf("stuck member: join: %v", err)
		}
		s.memberID = resp.MemberID
		sreq := kmsg.NewPtrSyncGroupRequest()
		sreq.Group, sreq.Generation, sreq.MemberID = "fileward-collector", resp.Generation, s.memberID
		if resp.LeaderID == s.memberID {
			t.Fatal("stuck member: elected leader; the test wants a collector to lead")
		}
		sresp, err := sreq.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("stuck member: sync: %v", err)
		}
		if err := kerr.ErrorForCode(sresp.ErrorCode); err != nil {
			if errors.Is(err, kerr.RebalanceInProgress) && attempt < 10 {
				continue // another member joined meanwhile: join again
			}
			t.Fatalf("stuck member: sync: %v", err)
		}
		return s
	}
}

// leave sends LeaveGroup for the stuck member.
func (s *stuckMember) leave(ctx context.Context) error {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = "fileward-collector"
	req.MemberID = s.memberID
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = s.memberID
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.ErrorCode)
}

// TestStopDuringRebalance: a collector given SIGTERM while it waits in a
// slow consumer group join exits promptly with exit 0, and nothing is lost.
//
// Two collectors share a 6-partition topic; a stuck member (it joined once
// with a 2-minute rebalance timeout and then stopped answering) holds the
// next rebalance open, so when a third collector joins, the other two give
// up their partitions and wait in JoinGroup. One of them is then stopped
// with SIGTERM. kafka-go's consumer group does not abort a JoinGroup in
// flight when it is closed (the request's own deadline is the session plus
// the request timeout, 20 s here), so a collector that waited for it did not
// exit within 20 s. It must exit 0 well within that, having left the group.
// Then the stuck member leaves, the two remaining collectors take every
// partition, and every event is indexed exactly once with the committed
// offsets at the partitions' ends.
func TestStopDuringRebalance(t *testing.T) {
	total := 30_000
	if raceEnabled {
		total = 6_000
	}
	bin := buildFileward(t)
	h := newHarness(t, rbPartitions)
	brokers := h.cluster.ListenAddrs()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t0 := time.Now()
	since := func() time.Duration { return time.Since(t0).Round(10 * time.Millisecond) }

	members := map[string]*member{}
	defer func() {
		for _, m := range members {
			m.kill()
		}
		if t.Failed() {
			for _, name := range sortedKeys(members) {
				members[name].dumpLog(t)
			}
		}
	}()
	start := func(name string) *member {
		m := startMember(t, bin, dir, name, brokers[0], h.bulk.URL)
		members[name] = m
		return m
	}
	assigned := func(m *member) float64 { return m.gauge(t, "fileward_collector_assigned_partitions") }

	ids := produce(t, brokers, 0, total/2)
	a := start("a")
	if !waitFor(60*time.Second, func() bool { return assigned(a) == rbPartitions }) {
		t.Fatalf("%v: a was not assigned all %d partitions", since(), rbPartitions)
	}
	b := start("b")
	if !waitFor(60*time.Second, func() bool { return assigned(a) > 0 && assigned(b) > 0 && assigned(a)+assigned(b) == rbPartitions }) {
		t.Fatalf("%v: a and b do not share the partitions: %v + %v", since(), assigned(a), assigned(b))
	}
	t.Logf("%v: a and b share the topic, %d indexed", since(), h.bulk.Count(ds))

	// The stuck member joins; its rebalance timeout is 2 minutes.
	s := joinStuck(ctx, t, brokers, 2*time.Minute)
	defer func() { _ = s.leave(context.Background()) }()
	if !waitFor(60*time.Second, func() bool { return assigned(a) > 0 && assigned(b) > 0 && assigned(a)+assigned(b) < rbPartitions }) {
		t.Fatalf("%v: the stuck member got no partition: a %v, b %v", since(), assigned(a), assigned(b))
	}
	t.Logf("%v: stuck member %s holds %v partitions", since(), s.memberID, rbPartitions-assigned(a)-assigned(b))

	// c joins: a and b end their generation and wait in JoinGroup, held
	// open by the stuck member.
	c := start("c")
	if !waitFor(60*time.Second, func() bool { return assigned(b) == 0 && b.gauge(t, "fileward_collector_rebalances_total") >= 2 }) {
		t.Fatalf("%v: b did not give up its partitions after c joined", since())
	}
	time.Sleep(500 * time.Millisecond) // b is in JoinGroup by now
	if assigned(b) != 0 || assigned(c) != 0 {
		t.Fatalf("%v: the rebalance ended before the SIGTERM (b %v, c %v partitions): the stuck member did not hold it", since(), assigned(b), assigned(c))
	}
	t.Logf("%v: b waits in the rebalance; SIGTERM", since())
	stopAt := time.Now()
	if err := b.stop(15 * time.Second); err != nil {
		t.Fatalf("%v: b after SIGTERM during the rebalance: %v", since(), err)
	}
	t.Logf("%v: b exited 0, %v after SIGTERM", since(), time.Since(stopAt).Round(10*time.Millisecond))
	if log, _ := os.ReadFile(b.logPath); strings.Contains(string(log), "goroutine ") || strings.Contains(string(log), "panic") {
		t.Fatalf("b's log shows a stack trace:\n%s", log)
	}

	// The stuck member leaves; a and c finish the topic.
	if err := s.leave(ctx); err != nil {
		t.Fatalf("stuck member: leave: %v", err)
	}
	ids = append(ids, produce(t, brokers, total/2, total-total/2)...)
	if !waitFor(120*time.Second, func() bool { return h.bulk.Count(ds) >= total }) {
		t.Fatalf("%v: index holds %d of %d", since(), h.bulk.Count(ds), total)
	}
	ends := map[int32]int64{}
	if !waitFor(30*time.Second, func() bool {
		com, err := committedOffsets(ctx, brokers)
		if err != nil {
			return false
		}
		var sum int64
		for p := range int32(rbPartitions) {
			sum += max(com[p], 0) // -1: a partition no key hashed to
			ends[p] = com[p]
		}
		return sum == int64(total)
	}) {
		com, _ := committedOffsets(ctx, brokers)
		t.Fatalf("committed offsets %v do not sum to the %d produced", com, total)
	}
	for _, m := range []*member{a, c} {
		if err := m.stop(20 * time.Second); err != nil {
			t.Fatalf("%s after SIGTERM: %v", m.name, err)
		}
	}
	h.expectExactly(ids)
	for name := range members {
		if b, err := os.ReadFile(filepath.Join(dir, name, "dead-letter.ndjson")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			t.Fatalf("%s: unexpected dead-letter records:\n%.1000s", name, b)
		}
	}
	t.Logf("%v: all %d indexed once; committed %v", since(), total, fmt.Sprint(ends))
}
