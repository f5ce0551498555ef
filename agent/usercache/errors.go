package usercache

import "errors"

var errNoName = errors.New("usercache: no name in dscacheutil output")
