package sinktest

import (
	"strconv"
	"time"

	"github.com/fileward/fileward/sinks"
)

// HostID is the host.id (and so the sinks.Event.Key) that Events gives the
// events of host h.
func HostID(prefix string, h int) string {
	return prefix + "-host-" + strconv.Itoa(h)
}

// EventID is the event.id that Events gives event i.
func EventID(prefix string, i int) string {
	return prefix + "-" + strconv.Itoa(i)
}

// Events returns n distinct events spread round-robin over hosts hosts:
// event i has ID EventID(prefix, i), Key HostID(prefix, i%hosts), and a Doc
// that is a realistic ECS file event of about 1 KB (one JSON object, no
// trailing newline) carrying the same event.id and host.id, and
// event.sequence = i/hosts, the event's position in its host's stream.
func Events(prefix string, n, hosts int) []sinks.Event {
	if hosts < 1 {
		hosts = 1
	}
	base := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	hostIDs := make([]string, hosts)
	for h := range hostIDs {
		hostIDs[h] = HostID(prefix, h)
	}
	// One backing array for all documents: cheap to build even under -race.
	buf := make([]byte, 0, n*1150)
	evs := make([]sinks.Event, n)
	for i := range evs {
		h := i % hosts
		id := EventID(prefix, i)
		start := len(buf)
		ts := base.Add(time.Duration(i) * time.Microsecond)
		shard := int64(i % 1000)
		pid := int64(1000 + i%97)

		buf = append(buf, `{"@timestamp":"`...)
		buf = ts.AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, `","event":{"kind":"event","category":["file"],"type":["access"],"action":"open","id":"`...)
		buf = append(buf, id...)
		buf = append(buf, `","sequence":`...)
		buf = strconv.AppendInt(buf, int64(i/hosts), 10)
		buf = append(buf, `,"module":"fileward","dataset":"fileward.file","provider":"fanotify","created":"`...)
		buf = ts.Add(150*time.Microsecond).AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, `"},"fileward":{"access":["read"]},"file":{"path":"/var/lib/app/data/shard-`...)
		buf = strconv.AppendInt(buf, shard, 10)
		buf = append(buf, `/segment-`...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, `.log","name":"segment-`...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, `.log","directory":"/var/lib/app/data/shard-`...)
		buf = strconv.AppendInt(buf, shard, 10)
		buf = append(buf, `","extension":"log","inode":"`...)
		buf = strconv.AppendInt(buf, int64(4_000_000+i), 10)
		buf = append(buf, `","device":"66306","mode":"0644","uid":"1000","gid":"1000","owner":"app","size":`...)
		buf = strconv.AppendInt(buf, int64(65536+i%4096), 10)
		buf = append(buf, `,"mtime":"`...)
		buf = ts.Add(-time.Second).AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, `"},"process":{"pid":`...)
		buf = strconv.AppendInt(buf, pid, 10)
		buf = append(buf, `,"executable":"/usr/lib/app/bin/app-worker","name":"app-worker","args":["/usr/lib/app/bin/app-worker","--config","/etc/app/worker.yaml"],"parent":{"pid":1,"executable":"/usr/lib/systemd/systemd"},"entity_id":"`...)
		buf = append(buf, hostIDs[h]...)
		buf = append(buf, '-')
		buf = strconv.AppendInt(buf, pid, 10)
		buf = append(buf, `"},"user":{"id":"1000","name":"app"},"group":{"id":"1000","name":"app"},"host":{"id":"`...)
		buf = append(buf, hostIDs[h]...)
		buf = append(buf, `","name":"node-`...)
		buf = strconv.AppendInt(buf, int64(h), 10)
		buf = append(buf, `.example.internal","os":{"type":"linux","version":"6.18.0"}},"agent":{"type":"fileward","version":"0.1.0","id":"5f1c2a9e-0d1b-4c6e-9a4f-`...)
		buf = strconv.AppendInt(buf, int64(100000000000+h), 10)
		buf = append(buf, `"},"ecs":{"version":"8.11.0"}}`...)

		evs[i] = sinks.Event{ID: id, Key: hostIDs[h], Doc: buf[start:len(buf):len(buf)]}
	}
	return evs
}
