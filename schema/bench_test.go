package schema

import (
	"encoding/json"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cpuMeter reports cpu-ns/op: the CPU time of the benchmark's locked OS
// thread per operation, which stays meaningful when other processes load
// the machine and stretch the wall-clock ns/op.
type cpuMeter struct {
	b     *testing.B
	start time.Duration
	ok    bool
}

func startCPU(b *testing.B) *cpuMeter {
	runtime.LockOSThread()
	m := &cpuMeter{b: b}
	m.start, m.ok = threadCPU()
	return m
}

func (m *cpuMeter) stop() {
	end, ok := threadCPU()
	runtime.UnlockOSThread()
	if m.ok && ok && m.b.N > 0 {
		m.b.ReportMetric(float64(end-m.start)/float64(m.b.N), "cpu-ns/op")
	}
}

// The encoding/json baseline: the same document as nested structs with
// struct tags, the way one would write it without a hand-written encoder.

type jDoc struct {
	Timestamp  string      `json:"@timestamp"`
	DataStream jDataStream `json:"data_stream"`
	Event      jEvent      `json:"event"`
	File       jFile       `json:"file"`
	Process    *jProcess   `json:"process,omitempty"`
	User       *jUser      `json:"user,omitempty"`
	Group      *jGroup     `json:"group,omitempty"`
	Fileward   *jFileward  `json:"fileward,omitempty"`
	Host       jHost       `json:"host"`
	Agent      jAgent      `json:"agent"`
	ECS        jECS        `json:"ecs"`
}

type jDataStream struct {
	Type      string `json:"type"`
	Dataset   string `json:"dataset"`
	Namespace string `json:"namespace"`
}

type jEvent struct {
	Kind     string   `json:"kind"`
	Category []string `json:"category"`
	Type     []string `json:"type"`
	Action   string   `json:"action"`
	Outcome  string   `json:"outcome,omitempty"`
	ID       string   `json:"id"`
	Sequence uint64   `json:"sequence"`
	Module   string   `json:"module"`
	Dataset  string   `json:"dataset"`
	Provider string   `json:"provider,omitempty"`
	Created  string   `json:"created,omitempty"`
}

type jFile struct {
	Path      string `json:"path"`
	Name      string `json:"name,omitempty"`
	Directory string `json:"directory,omitempty"`
	Extension string `json:"extension,omitempty"`
	Type      string `json:"type,omitempty"`
	Inode     string `json:"inode,omitempty"`
	Device    string `json:"device,omitempty"`
	Mode      string `json:"mode,omitempty"`
	UID       string `json:"uid,omitempty"`
	GID       string `json:"gid,omitempty"`
	Size      *int64 `json:"size,omitempty"`
	Mtime     string `json:"mtime,omitempty"`
	Ext       *struct {
		Original jOriginal `json:"original"`
	} `json:"Ext,omitempty"`
}

type jOriginal struct {
	Path      string `json:"path"`
	Name      string `json:"name,omitempty"`
	Extension string `json:"extension,omitempty"`
}

type jProcess struct {
	PID           int32     `json:"pid"`
	Executable    string    `json:"executable,omitempty"`
	Name          string    `json:"name,omitempty"`
	Args          []string  `json:"args,omitempty"`
	ArgsCount     int       `json:"args_count,omitempty"`
	CommandLine   string    `json:"command_line,omitempty"`
	WorkingDir    string    `json:"working_directory,omitempty"`
	EntityID      string    `json:"entity_id"`
	Start         string    `json:"start,omitempty"`
	Parent        *jParent  `json:"parent,omitempty"`
	Thread        *jThread  `json:"thread,omitempty"`
	CodeSignature *jCodeSig `json:"code_signature,omitempty"`
	Hash          *struct {
		CDHash string `json:"cdhash"`
	} `json:"hash,omitempty"`
}

type jThread struct {
	Capabilities struct {
		Effective []string `json:"effective"`
		Permitted []string `json:"permitted"`
	} `json:"capabilities"`
}

func jCaps(set uint64) []string {
	out := []string{}
	for b := 0; b < 64; b++ {
		if set&(1<<b) != 0 && CapabilityName(b) != "" {
			out = append(out, CapabilityName(b))
		}
	}
	return out
}

type jParent struct {
	PID         int32    `json:"pid"`
	Executable  string   `json:"executable,omitempty"`
	Name        string   `json:"name,omitempty"`
	Args        []string `json:"args,omitempty"`
	ArgsCount   int      `json:"args_count,omitempty"`
	CommandLine string   `json:"command_line,omitempty"`
	EntityID    string   `json:"entity_id,omitempty"`
	Start       string   `json:"start,omitempty"`
}

type jCodeSig struct {
	Exists    bool   `json:"exists"`
	SigningID string `json:"signing_id,omitempty"`
	TeamID    string `json:"team_id,omitempty"`
	Flags     string `json:"flags,omitempty"`
	Valid     *bool  `json:"valid,omitempty"`
	Trusted   *bool  `json:"trusted,omitempty"`
}

type jID struct {
	ID string `json:"id"`
}

type jGroup struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

type jUser struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	Ext  struct {
		Real jID `json:"real"`
	} `json:"Ext"`
}

type jESF struct {
	SeqNum       uint64  `json:"seq_num"`
	Event        string  `json:"event,omitempty"`
	Version      uint32  `json:"version,omitempty"`
	GlobalSeqNum *uint64 `json:"global_seq_num,omitempty"`
}

type jFileward struct {
	Access        []string `json:"access,omitempty"`
	Count         uint32   `json:"count,omitempty"`
	Stream        uint64   `json:"stream,omitempty"`
	PathTruncated bool     `json:"path_truncated,omitempty"`
	ExtAttr       string   `json:"extattr,omitempty"`
	Process       *struct {
		PlatformBinary bool `json:"platform_binary"`
	} `json:"process,omitempty"`
	ESF *jESF `json:"esf,omitempty"`
}

type jHost struct {
	ID           string `json:"id,omitempty"`
	Name         string `json:"name,omitempty"`
	Hostname     string `json:"hostname,omitempty"`
	Architecture string `json:"architecture,omitempty"`
	OS           *jOS   `json:"os,omitempty"`
}

type jOS struct {
	Type     string `json:"type,omitempty"`
	Family   string `json:"family,omitempty"`
	Name     string `json:"name,omitempty"`
	Platform string `json:"platform,omitempty"`
	Version  string `json:"version,omitempty"`
	Kernel   string `json:"kernel,omitempty"`
	Full     string `json:"full,omitempty"`
}

type jAgent struct {
	Type    string `json:"type"`
	Version string `json:"version,omitempty"`
	ID      string `json:"id,omitempty"`
}

type jECS struct {
	Version string `json:"version"`
}

func jTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000Z")
}

// buildJSONDoc builds the encoding/json form of the document Append writes.
func buildJSONDoc(enc *Encoder, ev *Event) *jDoc {
	m := enc.Meta()
	fds, pds, _ := m.Datasets()
	ds := fds
	if ev.Action == ActionExec {
		ds = pds
	}
	d := &jDoc{Timestamp: jTime(ev.TimeNS), DataStream: jDataStream{"logs", ds, m.NamespaceOrDefault()}}
	d.Event = jEvent{
		Kind: "event", Category: []string{EventCategory(ev.Action)}, Type: []string{EventType(ev.Action)}, Action: ev.Action.String(),
		Outcome: "success",
		ID:      string(enc.AppendID(nil, ev)), Sequence: ev.Seq, Module: "fileward", Dataset: ds,
		Provider: ev.Provider.String(),
	}
	if ev.CreatedNS != 0 {
		d.Event.Created = jTime(ev.CreatedNS)
	}
	dir, name, ext := SplitPath(ev.Path)
	d.File = jFile{Path: ev.Path, Name: name, Directory: dir, Extension: strings.ToLower(ext)}
	if ev.HasStat {
		size := ev.Size
		d.File.Type = fileType(ev.Mode)
		d.File.Inode = strconv.FormatUint(ev.Inode, 10)
		d.File.Device = strconv.FormatUint(ev.Device, 10)
		d.File.Mode = string(appendMode(nil, ev.Mode)[1:5])
		d.File.UID = strconv.FormatUint(uint64(ev.UID), 10)
		d.File.GID = strconv.FormatUint(uint64(ev.GID), 10)
		d.File.Size = &size
		if ev.MtimeNS != 0 {
			d.File.Mtime = jTime(ev.MtimeNS)
		}
	}
	if ev.OrigPath != "" {
		d.File.Ext = &struct {
			Original jOriginal `json:"original"`
		}{jOriginal{Path: ev.OrigPath, Name: baseName(ev.OrigPath), Extension: strings.ToLower(Extension(ev.OrigPath))}}
	}
	p := &ev.Process
	if hasProcess(p) {
		jp := &jProcess{PID: p.PID, Executable: p.Executable, Name: p.Name, Args: p.Args, ArgsCount: len(p.Args), CommandLine: strings.Join(p.Args, " "), WorkingDir: p.WorkingDir, EntityID: p.EntityID}
		if jp.Name == "" {
			jp.Name = baseName(p.Executable)
		}
		if jp.EntityID == "" {
			jp.EntityID = string(enc.AppendEntityID(nil, p))
		}
		if p.StartNS != 0 {
			jp.Start = jTime(p.StartNS)
		}
		if p.PPID > 0 {
			pp := p.Parent
			jp.Parent = &jParent{PID: p.PPID, Executable: pp.Executable, Name: pp.Name, Args: pp.Args, ArgsCount: len(pp.Args), CommandLine: strings.Join(pp.Args, " "), EntityID: pp.EntityID}
			if jp.Parent.Name == "" {
				jp.Parent.Name = baseName(pp.Executable)
			}
			if pp.EntityID == "" && pp.StartNS != 0 {
				jp.Parent.EntityID = string(enc.AppendEntityID(nil, &Process{PID: p.PPID, PIDVersion: pp.PIDVersion, StartNS: pp.StartNS}))
			}
			if pp.StartNS != 0 {
				jp.Parent.Start = jTime(pp.StartNS)
			}
		}
		if p.HasCaps && ev.Action == ActionExec {
			jp.Thread = &jThread{}
			jp.Thread.Capabilities.Effective = jCaps(p.CapEff)
			jp.Thread.Capabilities.Permitted = jCaps(p.CapPrm)
		}
		if p.HasCodeSig {
			jp.CodeSignature = &jCodeSig{Exists: p.SigningID != "" || p.CSFlags&CSSigned != 0, SigningID: p.SigningID, TeamID: p.TeamID}
			if p.HasCSFlags {
				valid := p.CSFlags&CSValid != 0
				jp.CodeSignature.Flags = strconv.FormatUint(uint64(p.CSFlags), 10)
				jp.CodeSignature.Valid = &valid
				tr := valid && p.CSFlags&CSAdhoc == 0 && (p.TeamID != "" || p.Platform || p.CSFlags&CSPlatform != 0)
				jp.CodeSignature.Trusted = &tr
			}
			if p.CDHash != "" {
				jp.Hash = &struct {
					CDHash string `json:"cdhash"`
				}{p.CDHash}
			}
		}
		d.Process = jp
	}
	if p.HasUser {
		u := &jUser{ID: strconv.FormatUint(uint64(p.UID), 10), Name: p.UserName}
		u.Ext.Real.ID = strconv.FormatUint(uint64(p.RUID), 10)
		d.User = u
		d.Group = &jGroup{strconv.FormatUint(uint64(p.GID), 10), p.GroupName}
	}
	fw := &jFileward{Stream: ev.Stream, PathTruncated: ev.PathTruncated, ExtAttr: ev.ExtAttr}
	switch ev.Access & (AccessRead | AccessWrite) {
	case AccessRead:
		fw.Access = []string{"read"}
	case AccessWrite:
		fw.Access = []string{"write"}
	case AccessRead | AccessWrite:
		fw.Access = []string{"read", "write"}
	}
	if ev.Count > 1 {
		fw.Count = ev.Count
	}
	if p.HasCodeSig && p.Platform {
		fw.Process = &struct {
			PlatformBinary bool `json:"platform_binary"`
		}{true}
	}
	if isESF(ev) {
		fw.ESF = &jESF{SeqNum: ev.ESFSeqNum, Event: ev.ESFEvent, Version: ev.ESFVersion}
		if ev.HasGlobalSeq {
			g := ev.GlobalSeq
			fw.ESF.GlobalSeqNum = &g
		}
	}
	if !reflect.ValueOf(*fw).IsZero() {
		d.Fileward = fw
	}
	d.Host = jHost{ID: m.HostID, Name: m.HostName, Hostname: m.Hostname, Architecture: m.Architecture}
	if os := (jOS{m.OSType, m.OSFamily, m.OSName, m.OSPlatform, m.OSVersion, m.OSKernel, m.OSFull}); os != (jOS{}) {
		d.Host.OS = &os
	}
	d.Agent = jAgent{Type: "fileward", Version: m.AgentVersion, ID: m.AgentID}
	d.ECS = jECS{ECSVersion}
	return d
}

// TestEncodingJSONBaselineEquivalent proves the benchmark baseline writes
// the same document: both outputs decode to equal values.
func TestEncodingJSONBaselineEquivalent(t *testing.T) {
	enc := NewEncoder(testMeta)
	evs := roundTripEvents()
	for _, a := range Actions() {
		ev := fullEvent()
		ev.Action = a
		ev.OrigPath = "/tmp/o"
		ev.Count = 2
		evs = append(evs, ev)
	}
	for i := range evs {
		ev := &evs[i]
		ours := enc.Append(nil, ev)
		theirs, err := json.Marshal(buildJSONDoc(enc, ev))
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		if err := json.Unmarshal(ours, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(theirs, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("event %d: documents differ:\n ours %s\njson  %s", i, ours, theirs)
		}
	}
}

// benchEvent is a realistic event: an ESF open by a signed process with
// stat, user, arguments and code signature.
func benchEvent() Event { return fullEvent() }

// BenchmarkEncode measures Append of one full document into a reused buffer.
func BenchmarkEncode(b *testing.B) { benchAppend(b, benchEvent()) }

// benchAppend times Append of ev (a new Seq each time) into a reused
// buffer, in bytes, allocations and CPU.
func benchAppend(b *testing.B, ev Event) {
	enc := NewEncoder(testMeta)
	buf := make([]byte, 0, 4096)
	buf = enc.Append(buf, &ev)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	m := startCPU(b)
	for i := 0; i < b.N; i++ {
		ev.Seq = uint64(i)
		buf = enc.Append(buf[:0], &ev)
	}
	m.stop()
}

// BenchmarkEncodeFileEvent encodes the full event without arguments, as
// file events are (only exec events carry them): consecutive documents of
// one process, whose process, user and group objects come from the
// encoder's cache after the second.
func BenchmarkEncodeFileEvent(b *testing.B) {
	ev := benchEvent()
	ev.Action = ActionModification
	ev.Process.Args, ev.Process.Parent.Args = nil, nil
	benchAppend(b, ev)
}

// BenchmarkEncodeEncodingJSON marshals the same document, already built as
// structs, with encoding/json: the conservative baseline, since building the
// struct (formatting times and ids) is not timed.
func BenchmarkEncodeEncodingJSON(b *testing.B) {
	enc := NewEncoder(testMeta)
	ev := benchEvent()
	doc := buildJSONDoc(enc, &ev)
	out, _ := json.Marshal(doc)
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	b.ResetTimer()
	m := startCPU(b)
	for i := 0; i < b.N; i++ {
		doc.Event.Sequence = uint64(i)
		if _, err := json.Marshal(doc); err != nil {
			b.Fatal(err)
		}
	}
	m.stop()
}

// BenchmarkEncodeEncodingJSONBuild also times building the struct from the
// Event, which is what an encoding/json encoder would do per event.
func BenchmarkEncodeEncodingJSONBuild(b *testing.B) {
	enc := NewEncoder(testMeta)
	ev := benchEvent()
	b.ReportAllocs()
	m := startCPU(b)
	for i := 0; i < b.N; i++ {
		ev.Seq = uint64(i)
		if _, err := json.Marshal(buildJSONDoc(enc, &ev)); err != nil {
			b.Fatal(err)
		}
	}
	m.stop()
}

// BenchmarkEncodeID measures event.id alone.
func BenchmarkEncodeID(b *testing.B) {
	enc := NewEncoder(testMeta)
	ev := benchEvent()
	buf := make([]byte, 0, IDLen)
	b.ReportAllocs()
	m := startCPU(b)
	for i := 0; i < b.N; i++ {
		ev.Seq = uint64(i)
		buf = enc.AppendID(buf[:0], &ev)
	}
	m.stop()
}

// BenchmarkDecodeECS measures DecodeECS of a full document.
func BenchmarkDecodeECS(b *testing.B) {
	enc := NewEncoder(testMeta)
	ev := benchEvent()
	doc := enc.Append(nil, &ev)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := DecodeECS(doc, &ev); err != nil {
			b.Fatal(err)
		}
	}
}
