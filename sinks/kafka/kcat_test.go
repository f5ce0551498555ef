package kafka

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testtool"
	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/sinks/sinktest"
)

// TestKcatReadsWhatWeWrite cross-checks the sink with an independent Kafka
// client (librdkafka, through Debian's kcat): every codec's messages, as
// kcat decodes them, carry our key, headers and document.
func TestKcatReadsWhatWeWrite(t *testing.T) {
	t.Parallel()
	kcat := testtool.Need(t, "kcat", "kcat")
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			c := newCluster(t, 3)
			s := newSink(t, c, Options{Compression: codec})
			evs := sinktest.Events("kcat-"+codec, 300, 3)
			sendAll(t, s, evs, 300)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, kcat, "-C", "-b", c.ListenAddrs()[0], "-t", testTopic,
				"-o", "beginning", "-e", "-q", "-J").Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Fatalf("kcat: %v\n%s", err, stderr)
			}
			byID := map[string]int{}
			sc := bufio.NewScanner(bytes.NewReader(out))
			sc.Buffer(nil, 16<<20)
			for sc.Scan() {
				var m struct {
					Key     string   `json:"key"`
					Payload string   `json:"payload"`
					Headers []string `json:"headers"` // name, value, name, value...
				}
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Fatalf("kcat line %q: %v", sc.Text(), err)
				}
				h := map[string]string{}
				for i := 0; i+1 < len(m.Headers); i += 2 {
					h[m.Headers[i]] = m.Headers[i+1]
				}
				id := h[HeaderEventID]
				i, err := eventIndex(id)
				if err != nil || i >= len(evs) {
					t.Fatalf("kcat message with event.id %q", id)
				}
				if m.Key != evs[i].Key || m.Payload != string(evs[i].Doc) ||
					h[HeaderECSVersion] != schema.ECSVersion || h[HeaderContentType] != ContentType {
					t.Fatalf("kcat read event %s as key %q, headers %v, payload %.80q…", id, m.Key, h, m.Payload)
				}
				byID[id]++
			}
			sinktest.ExpectExactly(t, byID, evs)
		})
	}
}
