package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// ErrNotFileEvent is returned (wrapped) by DecodeECS for a valid Fileward
// document that is not a file event: a loss or heartbeat document.
var ErrNotFileEvent = errors.New("not a file event")

// ErrInvalidDocument is wrapped by every error DecodeECS returns for input
// that is not one of our ECS file documents: malformed JSON, a missing
// required field, or a value of the wrong shape.
var ErrInvalidDocument = errors.New("invalid ECS document")

// ecsDoc is the subset of our document that maps back onto Event. Pointers
// mark fields whose presence matters.
type ecsDoc struct {
	Timestamp *string `json:"@timestamp"`
	Event     struct {
		Kind     string  `json:"kind"`
		Action   string  `json:"action"`
		Sequence uint64  `json:"sequence"`
		Dataset  string  `json:"dataset"`
		Provider string  `json:"provider"`
		Created  *string `json:"created"`
	} `json:"event"`
	File struct {
		Path   *string `json:"path"`
		Type   string  `json:"type"`
		Inode  *string `json:"inode"`
		Device *string `json:"device"`
		Mode   *string `json:"mode"`
		UID    *string `json:"uid"`
		GID    *string `json:"gid"`
		Size   *int64  `json:"size"`
		Mtime  *string `json:"mtime"`
		Ext    struct {
			Original struct {
				Path string `json:"path"`
			} `json:"original"`
		} `json:"Ext"`
	} `json:"file"`
	DataStream struct {
		Dataset string `json:"dataset"`
	} `json:"data_stream"`
	Process *struct {
		PID        int32    `json:"pid"`
		Executable string   `json:"executable"`
		Name       string   `json:"name"`
		Args       []string `json:"args"`
		WorkingDir string   `json:"working_directory"`
		EntityID   string   `json:"entity_id"`
		Start      *string  `json:"start"`
		Parent     struct {
			PID        int32    `json:"pid"`
			Executable string   `json:"executable"`
			Name       string   `json:"name"`
			Args       []string `json:"args"`
			EntityID   string   `json:"entity_id"`
			Start      *string  `json:"start"`
		} `json:"parent"`
		CodeSignature *struct {
			SigningID string  `json:"signing_id"`
			TeamID    string  `json:"team_id"`
			Flags     *string `json:"flags"`
		} `json:"code_signature"`
		Hash struct {
			CDHash string `json:"cdhash"`
		} `json:"hash"`
		Thread struct {
			Capabilities *struct {
				Effective []string `json:"effective"`
				Permitted []string `json:"permitted"`
			} `json:"capabilities"`
		} `json:"thread"`
	} `json:"process"`
	User *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Ext  struct {
			Real struct {
				ID *string `json:"id"`
			} `json:"real"`
		} `json:"Ext"`
	} `json:"user"`
	Group struct {
		ID   *string `json:"id"`
		Name string  `json:"name"`
	} `json:"group"`
	Fileward struct {
		Access        []string `json:"access"`
		Count         uint32   `json:"count"`
		Stream        uint64   `json:"stream"`
		PathTruncated bool     `json:"path_truncated"`
		ExtAttr       string   `json:"extattr"`
		Process       struct {
			PlatformBinary bool `json:"platform_binary"`
		} `json:"process"`
		ESF *struct {
			SeqNum       uint64  `json:"seq_num"`
			Event        string  `json:"event"`
			Version      uint32  `json:"version"`
			GlobalSeqNum *uint64 `json:"global_seq_num"`
		} `json:"esf"`
	} `json:"fileward"`
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidDocument}, args...)...)
}

// ParseAction maps an event.action value back to its Action; ok is false
// for anything not in Actions().
func ParseAction(s string) (Action, bool) {
	for a := ActionOpen; a < actionCount; a++ {
		if actionNames[a] == s {
			return a, true
		}
	}
	return ActionNone, false
}

func parseProvider(s string) (Provider, bool) {
	switch s {
	case "":
		return ProviderNone, true
	case "endpoint_security":
		return ProviderEndpointSecurity, true
	case "fanotify":
		return ProviderFanotify, true
	case "ebpf":
		return ProviderEBPF, true
	}
	return ProviderNone, false
}

func parseTime(field, s string) (int64, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, invalid("%s: %w", field, err)
	}
	if t.Before(time.Unix(0, math.MinInt64)) || t.After(time.Unix(0, math.MaxInt64)) {
		return 0, invalid("%s: %q is outside the range of Unix nanoseconds", field, s)
	}
	return t.UnixNano(), nil
}

func parseUint(field string, s *string, bits int) (uint64, error) {
	if s == nil {
		return 0, nil
	}
	v, err := strconv.ParseUint(*s, 10, bits)
	if err != nil {
		return 0, invalid("%s: %w", field, err)
	}
	return v, nil
}

// DecodeECS parses one Fileward ECS file document (as Append writes it) back
// into ev, which it overwrites. It is used to replay and convert ECS NDJSON.
//
// Fields the Event does not carry are ignored: the host, agent and ecs
// fields (the re-encoding agent writes its own), event.id (re-derived from
// provider, fileward.stream and event.sequence), and the fields derived from
// the path. Unknown fields are ignored too. @timestamp, a known event.action
// and a non-empty file.path are required; their absence, malformed JSON and
// values of the wrong type give an error wrapping ErrInvalidDocument. A loss
// or heartbeat document gives an error wrapping ErrNotFileEvent.
func DecodeECS(line []byte, ev *Event) error {
	*ev = Event{}
	var d ecsDoc
	if err := json.Unmarshal(line, &d); err != nil {
		return invalid("%w", err)
	}
	if d.Event.Dataset == DatasetAgent || d.DataStream.Dataset == DatasetAgent || d.Event.Kind == "pipeline_error" || d.Event.Kind == "metric" {
		return fmt.Errorf("event.action %q (event.dataset %q): %w", d.Event.Action, d.Event.Dataset, ErrNotFileEvent)
	}
	if d.Timestamp == nil {
		return invalid("missing @timestamp")
	}
	if d.Event.Action == "" {
		return invalid("missing event.action")
	}
	a, ok := ParseAction(d.Event.Action)
	if !ok {
		return invalid("unknown event.action %q", d.Event.Action)
	}
	if d.File.Path == nil || *d.File.Path == "" {
		return invalid("missing file.path")
	}
	p, ok := parseProvider(d.Event.Provider)
	if !ok {
		return invalid("unknown event.provider %q", d.Event.Provider)
	}
	var err error
	if ev.TimeNS, err = parseTime("@timestamp", *d.Timestamp); err != nil {
		return err
	}
	if d.Event.Created != nil {
		if ev.CreatedNS, err = parseTime("event.created", *d.Event.Created); err != nil {
			return err
		}
	}
	ev.Action = a
	ev.Provider = p
	ev.Seq = d.Event.Sequence

	f := &d.File
	ev.Path = *f.Path
	ev.OrigPath = f.Ext.Original.Path
	if f.Inode != nil || f.Device != nil || f.Mode != nil || f.UID != nil || f.GID != nil || f.Size != nil || f.Mtime != nil {
		ev.HasStat = true
		if ev.Inode, err = parseUint("file.inode", f.Inode, 64); err != nil {
			return err
		}
		if ev.Device, err = parseUint("file.device", f.Device, 64); err != nil {
			return err
		}
		if f.Mode != nil {
			m, err := strconv.ParseUint(*f.Mode, 8, 32)
			if err != nil || m > 0o7777 {
				return invalid("file.mode: %q is not an octal permission string", *f.Mode)
			}
			ev.Mode = uint32(m)
		}
		if f.Type != "" {
			t, ok := fileTypeMode(f.Type)
			if !ok {
				return invalid("unknown file.type %q", f.Type)
			}
			ev.Mode |= t
		}
		uid, err := parseUint("file.uid", f.UID, 32)
		if err != nil {
			return err
		}
		gid, err := parseUint("file.gid", f.GID, 32)
		if err != nil {
			return err
		}
		ev.UID, ev.GID = uint32(uid), uint32(gid)
		if f.Size != nil {
			ev.Size = *f.Size
		}
		if f.Mtime != nil {
			if ev.MtimeNS, err = parseTime("file.mtime", *f.Mtime); err != nil {
				return err
			}
		}
	}

	if dp := d.Process; dp != nil {
		pr := &ev.Process
		pr.PID = dp.PID
		pr.PPID = dp.Parent.PID
		pr.Executable = dp.Executable
		pr.Name = dp.Name
		pr.Args = dp.Args
		pr.WorkingDir = dp.WorkingDir
		pr.EntityID = dp.EntityID
		// The parent's entity id is kept as written: re-encoding gives the
		// same value whether it was derived or given.
		pr.Parent = Parent{Executable: dp.Parent.Executable, Name: dp.Parent.Name, Args: dp.Parent.Args, EntityID: dp.Parent.EntityID}
		if dp.Parent.Start != nil {
			if pr.Parent.StartNS, err = parseTime("process.parent.start", *dp.Parent.Start); err != nil {
				return err
			}
		}
		if dp.Start != nil {
			if pr.StartNS, err = parseTime("process.start", *dp.Start); err != nil {
				return err
			}
		}
		if c := dp.Thread.Capabilities; c != nil {
			pr.HasCaps = true
			for _, set := range []struct {
				names []string
				bits  *uint64
			}{{c.Effective, &pr.CapEff}, {c.Permitted, &pr.CapPrm}} {
				for _, n := range set.names {
					b, ok := parseCapability(n)
					if !ok {
						return invalid("unknown capability %q", n)
					}
					*set.bits |= 1 << b
				}
			}
		}
		if cs := dp.CodeSignature; cs != nil {
			pr.HasCodeSig = true
			pr.SigningID = cs.SigningID
			pr.TeamID = cs.TeamID
			pr.Platform = d.Fileward.Process.PlatformBinary
			pr.CDHash = dp.Hash.CDHash
			if cs.Flags != nil {
				f, err := parseUint("process.code_signature.flags", cs.Flags, 32)
				if err != nil {
					return err
				}
				pr.CSFlags, pr.HasCSFlags = uint32(f), true
			}
		}
	}
	if u := d.User; u != nil {
		pr := &ev.Process
		pr.HasUser = true
		id := u.ID
		uid, err := parseUint("user.id", &id, 32)
		if err != nil {
			return err
		}
		pr.UID = uint32(uid)
		pr.RUID = pr.UID
		if u.Ext.Real.ID != nil {
			ruid, err := parseUint("user.Ext.real.id", u.Ext.Real.ID, 32)
			if err != nil {
				return err
			}
			pr.RUID = uint32(ruid)
		}
		pr.UserName = u.Name
		pr.GroupName = d.Group.Name
		gid, err := parseUint("group.id", d.Group.ID, 32)
		if err != nil {
			return err
		}
		pr.GID = uint32(gid)
	}

	fw := &d.Fileward
	for _, s := range fw.Access {
		switch s {
		case "read":
			ev.Access |= AccessRead
		case "write":
			ev.Access |= AccessWrite
		default:
			return invalid("unknown fileward.access value %q", s)
		}
	}
	ev.Count = fw.Count
	ev.Stream = fw.Stream
	ev.PathTruncated = fw.PathTruncated
	ev.ExtAttr = fw.ExtAttr
	if esf := fw.ESF; esf != nil {
		ev.ESFSeqNum = esf.SeqNum
		ev.ESFEvent = esf.Event
		ev.ESFVersion = esf.Version
		if esf.GlobalSeqNum != nil {
			ev.HasGlobalSeq = true
			ev.GlobalSeq = *esf.GlobalSeqNum
		}
	}
	return nil
}
