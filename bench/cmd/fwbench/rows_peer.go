package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

const (
	rsyslogd   = "/usr/sbin/rsyslogd"
	omkafkaLib = "omkafka.so"
)

// rsyslogReady reports whether rsyslogd and its omkafka module are
// installed, installing them with apt-get when allowed. The string says
// why not.
func (h *harness) rsyslogReady(ctx context.Context) (string, bool) {
	have := func() bool {
		if !fileExists(rsyslogd) {
			return false
		}
		m, _ := filepath.Glob("/usr/lib/*/rsyslog/" + omkafkaLib)
		m2, _ := filepath.Glob("/usr/lib/rsyslog/" + omkafkaLib)
		return len(m)+len(m2) > 0
	}
	if have() {
		return "", true
	}
	if !h.install {
		return "rsyslog or rsyslog-kafka is not installed (and -install-peers=false)", false
	}
	h.logf("peer: installing rsyslog and rsyslog-kafka with apt-get")
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "rsyslog", "rsyslog-kafka")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil || !have() {
		return fmt.Sprintf("apt-get install rsyslog rsyslog-kafka failed (%v): %s", err, tail(string(out), 300)), false
	}
	return "", true
}

// rowPeer ships the same n pre-converted ECS NDJSON lines with rsyslog
// (imfile → a ruleset whose omkafka action has a pure disk queue, so every
// message is written to and read back from disk, as ours go through the
// spool) to a kfake broker in this process, waits until the topic holds
// all n, and reads rsyslogd's rusage. syslog-ng is not run: Debian's
// syslog-ng-core conflicts with rsyslog (both provide system-log-daemon),
// so the two cannot be installed side by side.
func (h *harness) rowPeer(ctx context.Context) ([]Result, error) {
	n := h.kafkaEvents()
	notes := "syslog-ng not measured: syslog-ng-core conflicts with rsyslog in Debian (both provide system-log-daemon)"
	if why, ok := h.rsyslogReady(ctx); !ok {
		h.logf("peer: skipped: %s", why)
		return []Result{{Name: "peer.rsyslog_omkafka_disk_events_per_s", Unit: "events/s", Skipped: why, Notes: notes}}, nil
	}
	ecs, err := h.ecsInput(ctx, n)
	if err != nil {
		return nil, err
	}
	br, err := h.newBlackholeBroker(ctx, "fw-rsyslog")
	if err != nil {
		return nil, err
	}
	defer br.Close()
	dir := filepath.Join(h.work, "rsyslog")
	for _, d := range []string{dir, filepath.Join(dir, "work"), filepath.Join(dir, "queue")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	codec := h.kafkaCompression
	if codec == "" {
		codec = "none"
	}
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k")
module(load="imfile" mode="inotify")
module(load="omkafka")
template(name="fwmsg" type="string" string="%%msg%%")
ruleset(name="fw") {
  action(type="omkafka" broker=[%q] topic="fw-rsyslog" template="fwmsg"
         confParam=["compression.codec=%s", "queue.buffering.max.ms=5", "batch.num.messages=10000"]
         topicConfParam=["request.required.acks=-1"]
         queue.type="Disk" queue.filename="fwq" queue.spoolDirectory=%q
         queue.maxDiskSpace="16g" queue.maxFileSize="64m" queue.dequeueBatchSize="1024"
         queue.saveOnShutdown="on" action.resumeRetryCount="-1")
}
input(type="imfile" File=%q Tag="fw" ruleset="fw" freshStartTail="off" reopenOnTruncate="off")
`, filepath.Join(dir, "work"), br.addr, codec, filepath.Join(dir, "queue"), ecs)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	var stderr syncBuffer
	cmd := exec.CommandContext(ctx, rsyslogd, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { err := cmd.Wait(); close(exited); done <- err }()
	hwm := newHWMSampler(cmd.Process.Pid, exited)
	alive := func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("rsyslogd exited (%v): %s", err, tail(stderr.String(), 1500))
		default:
			return nil
		}
	}
	at, err := br.waitCount(ctx, "fw-rsyslog", int64(n), 3*h.timeout(n), alive)
	if err != nil {
		cmd.Process.Kill()
		<-done
		return nil, fmt.Errorf("%w; rsyslogd output: %s", err, tail(stderr.String(), 1500))
	}
	wall := at.Sub(t0)
	queued := dirSize(filepath.Join(dir, "queue"))
	peak := hwm.Peak()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	u := usageOf(cmd.ProcessState, wall)
	u.MaxRSS = peak
	got, _ := br.count(ctx, "fw-rsyslog")
	h.logf("peer: rsyslog delivered %d of %d in %v, CPU %v, maxrss %d MiB", got, n, wall.Round(time.Millisecond), u.CPU.Round(time.Millisecond), u.MaxRSS>>20)
	if got != int64(n) {
		return nil, fmt.Errorf("rsyslog delivered %d records for %d events", got, n)
	}
	ver := ""
	if out, err := exec.Command(rsyslogd, "-v").Output(); err == nil {
		ver = string(bytes.SplitN(out, []byte("\n"), 2)[0])
	}
	rate := float64(n) / wall.Seconds()
	perM := u.CPU.Seconds() / (float64(n) / 1e6)
	common := fmt.Sprintf("%s; imfile → omkafka with queue.type=Disk, acks all, compression %s; %d of %d delivered (counted on the broker); %d bytes left in its queue dir at the end; %s",
		ver, codec, got, n, queued, notes)
	r1 := Result{Name: "peer.rsyslog_omkafka_disk_events_per_s", Value: rate, Unit: "events/s", Notes: common}
	r2 := Result{Name: "peer.rsyslog_omkafka_disk_cpu_s_per_1M", Value: perM, Unit: "CPU-s/1M events",
		Notes: fmt.Sprintf("rusage of rsyslogd: user %.2fs sys %.2fs", u.User.Seconds(), u.Sys.Seconds())}
	r3 := Result{Name: "peer.rsyslog_peak_rss", Value: float64(u.MaxRSS) / (1 << 20), Unit: "MiB", Notes: "peak VmHWM of rsyslogd (sampled from /proc)"}
	// The baseline of a peer row is the peer; the value stays the peer's
	// figure and the ratio says how fileward (the kafka row, same run,
	// same input, same broker set-up) compares.
	if k := h.kafkaAgent; k.rate > 0 {
		r1.Baseline, r1.BaselineUnit, r1.BaselineName = k.rate, "events/s", "fileward agent (kafka.agent_events_per_s)"
		r1.Ratio, r1.RatioMeans = k.rate/rate, "fileward / rsyslog (higher: fileward faster)"
		r2.Baseline, r2.BaselineUnit, r2.BaselineName = k.cpuPerM, "CPU-s/1M events", "fileward agent (kafka.agent_cpu_s_per_1M)"
		r2.Ratio, r2.RatioMeans = perM/k.cpuPerM, "rsyslog / fileward (higher: fileward cheaper)"
		r3.Baseline, r3.BaselineUnit, r3.BaselineName = k.rssMiB, "MiB", "fileward agent (kafka.agent_peak_rss)"
	}
	return []Result{r1, r2, r3}, nil
}
