package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/fileward/fileward/agent/capture/eslogger"
	"github.com/fileward/fileward/schema"
)

// cmdConvert reads eslogger or ECS NDJSON and writes ECS NDJSON, one document
// per mapped event. Output is deterministic: event.created is set to the
// event's own time, the sequence comes from the input (global_seq_num, else
// the line's position in the input), and host fields come from the flags or
// this machine.
func cmdConvert(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("convert", stdout, stderr)
	from := fs.String("from", "eslogger", "input format: eslogger or ecs")
	hostName := fs.String("host-name", "", "host.name to write (default: this machine's)")
	hostID := fs.String("host-id", "", "host.id to write (default: this machine's)")
	hostOS := fs.String("host-os-type", "", "host.os.type to write (default: macos for eslogger input, else this machine's)")
	maxLine := fs.Int("max-line-bytes", 1<<20, "longest input line; a longer one is skipped as malformed without being read whole (as source.max_line_bytes)")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if *maxLine < 4096 {
		fmt.Fprintf(stderr, "convert: --max-line-bytes %d: must be at least 4096\n", *maxLine)
		return 2
	}
	if *from != "eslogger" && *from != "ecs" {
		fmt.Fprintf(stderr, "convert: --from %q: use eslogger or ecs\n", *from)
		return 2
	}
	meta, err := hostMeta(*hostID, *hostName, "")
	if err != nil {
		fmt.Fprintf(stderr, "convert: %v\n", err)
		return 1
	}
	if *from == "eslogger" {
		// eslogger streams come from a Mac, whatever machine converts them.
		meta.OSType, meta.OSVersion = "macos", ""
	}
	if *hostOS != "" && *hostOS != meta.OSType {
		meta.OSType, meta.OSVersion = *hostOS, ""
	}
	c := &converter{enc: schema.NewEncoder(meta), from: *from, parser: eslogger.NewParser(), stderr: stderr, maxLine: *maxLine}
	w := bufio.NewWriterSize(stdout, 256<<10)
	inputs := fs.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	// Every input must be there before anything is converted: a missing
	// file or a directory is an error of the command line, not a bad line.
	for _, name := range inputs {
		if name == "-" {
			continue
		}
		fi, err := os.Stat(name)
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "convert: %v\n", err)
			return 1
		case fi.IsDir():
			fmt.Fprintf(stderr, "convert: %s is a directory: name NDJSON files, or - for standard input\n", name)
			return 1
		}
	}
	for _, name := range inputs {
		if name == "-" {
			c.convert("-", stdin, w)
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "convert: %v\n", err)
			return 1
		}
		c.convert(name, f, w)
		f.Close()
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(stderr, "convert: write: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "convert: %d documents, %d lines skipped, %d malformed\n", c.written, c.skipped, c.malformed)
	if c.malformed > 0 {
		return 1
	}
	return 0
}

type converter struct {
	enc    *schema.Encoder
	from   string
	parser *eslogger.Parser
	stderr io.Writer
	// maxLine bounds one input line (--max-line-bytes).
	maxLine int

	pos                         uint64 // non-blank lines read across all inputs
	written, skipped, malformed int
	ev                          schema.Event
	doc                         []byte
}

func (c *converter) convert(name string, r io.Reader, w *bufio.Writer) {
	br := bufio.NewReaderSize(r, 1<<20)
	var long []byte
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadSlice('\n')
		overlong := false
		if errors.Is(err, bufio.ErrBufferFull) {
			// Assemble up to maxLine; past it, read on without keeping.
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				if !overlong {
					long = append(long, line...)
					overlong = len(long) > c.maxLine+1
				}
			}
			line = long
		}
		switch {
		case overlong || len(bytes.TrimRight(line, "\r\n")) > c.maxLine:
			c.pos++
			fmt.Fprintf(c.stderr, "%s:%d: malformed: line longer than --max-line-bytes (%d bytes); skipped\n", name, lineNo, c.maxLine)
			c.malformed++
		case len(line) > 0:
			c.line(name, lineNo, line, w)
		}
		if cap(long) > 2*c.maxLine+(1<<20) {
			long = nil
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Fprintf(c.stderr, "%s:%d: read: %v\n", name, lineNo, err)
				c.malformed++
			}
			return
		}
	}
}

func (c *converter) line(name string, lineNo int, line []byte, w *bufio.Writer) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	c.pos++ // the position of this non-blank line, as the eslogger runner counts
	ev := &c.ev
	var mapped bool
	var err error
	if c.from == "ecs" {
		*ev = schema.Event{}
		err = schema.DecodeECS(line, ev)
		mapped = err == nil
		if errors.Is(err, schema.ErrNotFileEvent) {
			err, mapped = nil, false // loss and heartbeat documents are skipped
		}
	} else {
		mapped, err = c.parser.Parse(line, ev)
		if mapped && !ev.HasGlobalSeq {
			ev.Seq = c.pos
		}
	}
	switch {
	case err != nil:
		fmt.Fprintf(c.stderr, "%s:%d: malformed: %v\n", name, lineNo, err)
		c.malformed++
		return
	case !mapped:
		fmt.Fprintf(c.stderr, "%s:%d: skipped: %q is not a file event Fileward maps\n", name, lineNo, ev.ESFEvent)
		c.skipped++
		return
	}
	ev.CreatedNS = ev.TimeNS
	c.doc = c.enc.Append(c.doc[:0], ev)
	c.doc = append(c.doc, '\n')
	w.Write(c.doc)
	c.written++
}
