package schema_test

import (
	"fmt"

	"github.com/fileward/fileward/schema"
)

func ExampleEncoder() {
	enc := schema.NewEncoder(schema.Meta{
		HostID:       "host-1",
		HostName:     "web-01",
		OSType:       "linux",
		OSVersion:    "6.18.0",
		AgentID:      "agent-1",
		AgentVersion: "0.1.0",
	})
	ev := schema.Event{
		TimeNS:   1764122739123456789,
		Action:   schema.ActionRename,
		Provider: schema.ProviderFanotify,
		Seq:      42,
		Path:     "/etc/app/config.yaml",
		OrigPath: "/etc/app/.config.yaml.swp",
		Process:  schema.Process{PID: 1234, PPID: 1, Executable: "/usr/bin/vim", EntityID: "vim-1234"},
	}
	// Reuse one buffer: in steady state Append does not allocate.
	buf := make([]byte, 0, 1024)
	buf = enc.Append(buf[:0], &ev)
	fmt.Println(string(buf))

	var back schema.Event
	if err := schema.DecodeECS(buf, &back); err != nil {
		fmt.Println(err)
	}
	fmt.Println(back.Action, back.OrigPath, back.Seq, len(enc.AppendID(nil, &ev)) == schema.IDLen)

	loss := schema.Loss{TimeNS: 1764122740000000000, Reason: schema.LossRingFull, Count: 17, Seq: 1}
	fmt.Println(string(enc.AppendLoss(nil, &loss)))
	// Output:
	// {"@timestamp":"2025-11-26T02:05:39.123456789Z","data_stream":{"type":"logs","dataset":"fileward.file","namespace":"default"},"event":{"kind":"event","category":["file"],"type":["change"],"action":"rename","outcome":"success","id":"c293cb5ef670084b52995e400ccea1a0","sequence":42,"module":"fileward","dataset":"fileward.file","provider":"fanotify"},"file":{"path":"/etc/app/config.yaml","name":"config.yaml","directory":"/etc/app","extension":"yaml","Ext":{"original":{"path":"/etc/app/.config.yaml.swp","name":".config.yaml.swp","extension":"swp"}}},"process":{"pid":1234,"executable":"/usr/bin/vim","name":"vim","entity_id":"vim-1234","parent":{"pid":1}},"host":{"id":"host-1","name":"web-01","os":{"type":"linux","version":"6.18.0"}},"agent":{"type":"fileward","version":"0.1.0","id":"agent-1"},"ecs":{"version":"8.17.0"}}
	// rename /etc/app/.config.yaml.swp 42 true
	// {"@timestamp":"2025-11-26T02:05:40.000000000Z","data_stream":{"type":"logs","dataset":"fileward.agent","namespace":"default"},"event":{"kind":"pipeline_error","action":"events_lost","id":"c7f1b711f4733959c0d8a68700d159cf","sequence":1,"module":"fileward","dataset":"fileward.agent"},"message":"fileward lost 17 events (ring_full): the ring between capture and pipeline was full, the pipeline fell behind the kernel","fileward":{"lost":{"reason":"ring_full","count":17}},"host":{"id":"host-1","name":"web-01","os":{"type":"linux","version":"6.18.0"}},"agent":{"type":"fileward","version":"0.1.0","id":"agent-1"},"ecs":{"version":"8.17.0"}}
}
