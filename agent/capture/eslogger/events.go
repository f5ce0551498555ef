package eslogger

import (
	"fmt"
	"slices"
)

// configEvents maps source.events config names to eslogger event names.
// "modify" is close (with modified=true); write is subscribed only when
// "write" itself is asked for, because close already carries the
// modification at a fraction of the volume.
var configEvents = map[string][]string{
	"open":       {"open"},
	"close":      {"close"},
	"modify":     {"close"},
	"create":     {"create"},
	"rename":     {"rename"},
	"delete":     {"unlink"},
	"attrib":     {"setmode", "setowner", "setflags", "setattrlist", "setacl", "utimes"},
	"exec":       {"exec"},
	"write":      {"write"},
	"truncate":   {"truncate"},
	"link":       {"link"},
	"clone":      {"clone"},
	"exchange":   {"exchangedata"},
	"setextattr": {"setextattr", "deleteextattr"},
	// access (Linux reads) has no ESF event: ESF reports no read().
	"access": nil,
}

// EsloggerEvents maps config event names to the eslogger event names to
// subscribe, in a stable order without duplicates. An unknown config name is
// an error; "access" maps to nothing (ESF has no read event) and is reported
// in skipped.
func EsloggerEvents(names []string) (events, skipped []string, err error) {
	for _, n := range names {
		mapped, ok := configEvents[n]
		if !ok {
			return nil, nil, fmt.Errorf("source.events: unknown event %q", n)
		}
		if mapped == nil {
			skipped = append(skipped, n)
		}
		for _, e := range mapped {
			if !slices.Contains(events, e) {
				events = append(events, e)
			}
		}
	}
	return events, skipped, nil
}
