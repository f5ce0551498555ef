package schema

// Field is one leaf field the encoders can write, by its dotted ECS name
// and its Elasticsearch field type (keyword, date, long, boolean,
// match_only_text). An array field (event.category, process.args,
// fileward.access) is listed once with the type of its elements.
type Field struct {
	Name string
	Type string
}

// Fields returns every field that Append, AppendLoss or AppendHeartbeat can
// write, in document order. The index template is generated from it, and a
// test checks that the encoders write nothing outside it. Each call returns a
// new slice the caller may modify.
func Fields() []Field {
	return []Field{
		{"@timestamp", "date"},
		{"event.kind", "keyword"},
		{"event.category", "keyword"},
		{"event.type", "keyword"},
		{"event.action", "keyword"},
		{"event.id", "keyword"},
		{"event.sequence", "long"},
		{"event.module", "keyword"},
		{"event.dataset", "keyword"},
		{"event.provider", "keyword"},
		{"event.created", "date"},
		{"message", "match_only_text"},

		{"file.path", "keyword"},
		{"file.name", "keyword"},
		{"file.directory", "keyword"},
		{"file.extension", "keyword"},
		{"file.type", "keyword"},
		{"file.inode", "keyword"},
		{"file.device", "keyword"},
		{"file.mode", "keyword"},
		{"file.uid", "keyword"},
		{"file.gid", "keyword"},
		{"file.size", "long"},
		{"file.mtime", "date"},
		{"file.Ext.original.path", "keyword"},
		{"file.Ext.original.name", "keyword"},

		{"process.pid", "long"},
		{"process.executable", "keyword"},
		{"process.name", "keyword"},
		{"process.args", "keyword"},
		{"process.args_count", "long"},
		{"process.entity_id", "keyword"},
		{"process.start", "date"},
		{"process.parent.pid", "long"},
		{"process.code_signature.exists", "boolean"},
		{"process.code_signature.signing_id", "keyword"},
		{"process.code_signature.team_id", "keyword"},
		{"process.code_signature.trusted", "boolean"},
		{"process.hash.cdhash", "keyword"},

		{"user.id", "keyword"},
		{"user.name", "keyword"},
		{"user.Ext.real.id", "keyword"},
		{"group.id", "keyword"},

		{"fileward.access", "keyword"},
		{"fileward.count", "long"},
		{"fileward.stream", "long"},
		{"fileward.path_truncated", "boolean"},
		{"fileward.extattr", "keyword"},
		{"fileward.esf.seq_num", "long"},
		{"fileward.esf.event", "keyword"},
		{"fileward.esf.version", "long"},
		{"fileward.esf.global_seq_num", "long"},
		{"fileward.lost.reason", "keyword"},
		{"fileward.lost.count", "long"},
		{"fileward.lost.total.ring_full", "long"},
		{"fileward.lost.total.kernel_overflow", "long"},
		{"fileward.lost.total.seq_gap", "long"},
		{"fileward.lost.total.source_restart", "long"},
		{"fileward.lost.total.spool_full", "long"},
		{"fileward.lost.total.rejected", "long"},
		{"fileward.lost.total.malformed", "long"},
		{"fileward.lost.total.corrupt", "long"},
		{"fileward.stats.started", "date"},
		{"fileward.stats.uptime_s", "long"},
		{"fileward.stats.captured", "long"},
		{"fileward.stats.dropped", "long"},
		{"fileward.stats.spooled", "long"},
		{"fileward.stats.spool_bytes", "long"},
		{"fileward.stats.ring_depth", "long"},

		{"host.id", "keyword"},
		{"host.name", "keyword"},
		{"host.os.type", "keyword"},
		{"host.os.version", "keyword"},
		{"agent.type", "keyword"},
		{"agent.version", "keyword"},
		{"agent.id", "keyword"},
		{"ecs.version", "keyword"},
	}
}
