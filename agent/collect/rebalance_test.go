//go:build !mutation

package collect

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	kafkasink "github.com/fileward/fileward/sinks/kafka"
)

const rbPartitions = 6

// member is one `fileward collect` child process.
type member struct {
	name, metrics, logPath string
	cmd                    *exec.Cmd
	exited                 chan error
}

func startMember(t *testing.T, bin, dir, name, broker, bulkURL string) *member {
	t.Helper()
	mdir := filepath.Join(dir, name)
	if err := os.MkdirAll(mdir, 0o750); err != nil {
		t.Fatal(err)
	}
	m := &member{name: name, metrics: freePort(t), logPath: filepath.Join(mdir, "collector.log"), exited: make(chan error, 1)}
	cfg := fmt.Sprintf(`agent:
  data_dir: %[1]s/var
metrics:
  listen: %[2]s
collector:
  kafka:
    brokers: [%[3]q]
    topic: %[4]s
    group_id: fileward-collector
  elasticsearch:
    addresses: [%[5]q]
    data_stream: logs-fileward.file-default
    setup_template: true
    timeout: 10s
  batch_events: 1000
  batch_wait: 100ms
  backoff: { initial: 20ms, max: 500ms, multiplier: 2, jitter: 0.2 }
  dead_letter: %[1]s/dead-letter.ndjson
`, mdir, m.metrics, broker, topic, bulkURL)
	cfgPath := filepath.Join(mdir, "collector.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(m.logPath)
	if err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command(bin, "collect", "-c", cfgPath)
	m.cmd.Dir = mdir
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.exited <- m.cmd.Wait(); logf.Close() }()
	return m
}

// kill SIGKILLs the member (if it still runs) and reaps it.
func (m *member) kill() {
	_ = m.cmd.Process.Kill()
	if m.exited != nil {
		<-m.exited
		m.exited = nil
	}
}

// stop sends SIGTERM and wants exit 0 within d.
func (m *member) stop(d time.Duration) error {
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-m.exited:
		m.exited = nil
		return err
	case <-time.After(d):
		return fmt.Errorf("no exit within %v of SIGTERM", d)
	}
}

func (m *member) dumpLog(t *testing.T) {
	b, _ := os.ReadFile(m.logPath)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	t.Logf("%s log tail:\n%s", m.name, b)
}

// scrape returns the member's /metrics sample lines; none while it does
// not answer yet (a loaded machine starts it slowly).
func (m *member) scrape(t *testing.T) []string {
	t.Helper()
	resp, err := http.Get("http://" + m.metrics + "/metrics")
	if err != nil {
		return nil
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil
	}
	body := string(b)
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if l := sc.Text(); l != "" && l[0] != '#' {
			out = append(out, l)
		}
	}
	return out
}

// gauge is the value of an unlabelled metric; -1 when absent.
func (m *member) gauge(t *testing.T, name string) float64 {
	for _, l := range m.scrape(t) {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", m.name, l, err)
			}
			return f
		}
	}
	return -1
}

// labelledValues maps the partition label of metric name{partition,topic}
// to its value, for the collector's topic.
func (m *member) labelledValues(t *testing.T, name string) map[string]float64 {
	out := map[string]float64{}
	for _, l := range m.scrape(t) {
		rest, ok := strings.CutPrefix(l, name+"{")
		if !ok {
			continue
		}
		labels, val, ok := strings.Cut(rest, "} ")
		if !ok || !strings.Contains(labels, `topic="`+topic+`"`) {
			continue
		}
		_, p, _ := strings.Cut(labels, `partition="`)
		p, _, _ = strings.Cut(p, `"`)
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", m.name, l, err)
		}
		out[p] = f
	}
	return out
}

// labelled lists the partitions for which name{...} is 1.
func (m *member) labelled(t *testing.T, name string) []string {
	var out []string
	for p, v := range m.labelledValues(t, name) {
		if v == 1 {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// topicIndex reads the topic back with franz-go, partition by partition
// from the start, and keeps the event.id header of every offset.
type topicIndex struct {
	t   *testing.T
	cl  *kgo.Client
	mu  sync.Mutex
	ids [rbPartitions][]string
	err error
}

func newTopicIndex(t *testing.T, brokers []string) *topicIndex {
	parts := map[int32]kgo.Offset{}
	for p := range int32(rbPartitions) {
		parts[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &topicIndex{t: t, cl: cl}
}

func (x *topicIndex) run(ctx context.Context) {
	for ctx.Err() == nil {
		fs := x.cl.PollFetches(ctx)
		x.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			p := r.Partition
			if r.Offset != int64(len(x.ids[p])) && x.err == nil {
				x.err = fmt.Errorf("partition %d: offset %d after %d records", p, r.Offset, len(x.ids[p]))
			}
			id := ""
			for _, h := range r.Headers {
				if h.Key == kafkasink.HeaderEventID {
					id = string(h.Value)
				}
			}
			x.ids[p] = append(x.ids[p], id)
		})
		x.mu.Unlock()
	}
}

// upTo returns the ids of partition p's offsets [from, to), waiting for the
// reader to get there.
func (x *topicIndex) upTo(ctx context.Context, p int32, from, to int64) ([]string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		x.mu.Lock()
		if x.err != nil {
			x.mu.Unlock()
			return nil, x.err
		}
		if int64(len(x.ids[p])) >= to {
			out := append([]string(nil), x.ids[p][from:to]...)
			x.mu.Unlock()
			return out, nil
		}
		n := len(x.ids[p])
		x.mu.Unlock()
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("partition %d: read back %d records, the group committed %d", p, n, to)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (x *topicIndex) lengths() map[int32]int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[int32]int64{}
	for p := range x.ids {
		out[int32(p)] = int64(len(x.ids[p]))
	}
	return out
}

// committedOffsets asks the group coordinator (OffsetFetch through franz-go)
// for the group's committed offsets; -1 means none.
func committedOffsets(ctx context.Context, brokers []string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = "fileward-collector"
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	for p := range int32(rbPartitions) {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := req.RequestWith(rctx, cl)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return nil, fmt.Errorf("offset fetch %s/%d: error code %d", t.Topic, p.Partition, p.ErrorCode)
			}
			out[p.Partition] = p.Offset
		}
	}
	return out, nil
}

// sampler checks, again and again, that no committed offset is ahead of an
// acknowledged document, and that none moves back (which only a commit for a
// partition its sender no longer owns does): it reads the committed offsets first and bulktest's
// ids second (the index only grows), so every message below a committed
// offset must be in that snapshot.
type sampler struct {
	t       *testing.T
	h       *harness
	idx     *topicIndex
	brokers []string

	mu         sync.Mutex
	verified   int64               // offsets below a committed offset found indexed
	upTo       [rbPartitions]int64 // per partition, offsets below this are verified
	maxCom     [rbPartitions]int64 // per partition, the highest committed offset seen
	samples    int
	violations []string
}

func (s *sampler) run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.check(ctx)
		}
	}
}

func (s *sampler) check(ctx context.Context) {
	com, err := committedOffsets(ctx, s.brokers)
	if err != nil {
		return // a coordinator hiccup; the next sample checks
	}
	acked := s.h.bulk.IDs(ds)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	for p := range int32(rbPartitions) {
		c := com[p]
		if c >= 0 && c < s.maxCom[p] {
			// Only a member committing a partition it no longer owns
			// (an ended generation's batch) moves an offset back.
			s.violations = append(s.violations, fmt.Sprintf("partition %d committed offset moved back from %d to %d", p, s.maxCom[p], c))
		}
		s.maxCom[p] = max(s.maxCom[p], c)
		if c <= s.upTo[p] {
			continue // below what is verified already: the index only grows
		}
		ids, err := s.idx.upTo(ctx, p, s.upTo[p], c)
		if err != nil {
			if ctx.Err() == nil {
				s.violations = append(s.violations, err.Error())
			}
			return
		}
		for i, id := range ids {
			if acked[id] == 0 {
				s.violations = append(s.violations, fmt.Sprintf("partition %d committed %d but offset %d (%s) is not indexed", p, c, s.upTo[p]+int64(i), id))
				return // one per partition and sample is enough
			}
		}
		s.verified += c - s.upTo[p]
		s.upTo[p] = c
	}
}
