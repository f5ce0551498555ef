// Package eslogger is the macOS capture source: it runs Apple's eslogger
// (an Endpoint Security client shipped with macOS 13+) as a supervised child
// and turns its JSON Lines into capture.Event values.
//
// It owns the eslogger parser (Parser, a hand-written scanner that decodes
// only what the agent needs; its fast paths for eslogger's own layout fall
// back to the general decoding on anything else, and refparser_test.go keeps
// the pre-speed-up parser as the oracle they are fuzzed against), the mapping of config event names to eslogger
// names, the runner (Source: one goroutine that reads the child's stdout,
// parses and pushes with Ring.TryPush; restarts with backoff; seq_num and
// global_seq_num gap counting; self-muting), and the darwin-only start-up
// checks (platform_darwin.go). The runner itself is portable so that Linux
// tests drive it with a stand-in executable.
//
// It must not do disk or network I/O in the read loop, must not wait on the
// pipeline, must not put the child in its own process group (eslogger mutes
// its own group, which keeps the agent's I/O out of the stream), must never
// pass --oslog, and must not import the pipeline, the spool, the sinks or the
// config package.
//
// Mapping decisions (the action table of docs/ecs.md):
//   - open → open, fflag FREAD 0x1 / FWRITE 0x2 → Access bits.
//   - close → modification when modified or was_mapped_writable, else close.
//   - write → modification; truncate → truncate; unlink → deletion.
//   - create → creation; Path is the existing file, or new_path dir + "/" + filename (no stat then).
//   - rename → rename; OrigPath = source, Path = the existing file replaced or dir + "/" + filename; stat is the moved (source) file's.
//   - link → link; Path = target_dir + "/" + target_filename, OrigPath = source, stat the source's (same inode).
//   - clone → clone; Path = target_dir + "/" + target_name, OrigPath = source, no stat (a new inode).
//   - exchangedata → exchange; Path = file1 (with its stat), OrigPath = file2.
//   - setextattr, deleteextattr → extended_attributes_modification with ExtAttr.
//   - setmode, setowner, setflags, setattrlist, setacl, utimes → attributes_modification (stat = before the change).
//   - exec → exec; Process is the new image (exec's target: same pid, new pidversion,
//     executable, code signature and args), Path its executable.
//   - fork, exit and other known events are counted as unmapped; unknown names are
//     counted by name (sampled). Neither is an error.
//
// Sequence: ev.Seq is global_seq_num when the message has it (version ≥ 4);
// otherwise the runner sets it to the line number in the current child's
// output (1-based, counting non-blank lines). ev.Stream changes with every child
// start (see Options.Stream), so (Stream, Seq) is unique per agent run.
package eslogger
