//go:build !race

package eslogger

// floodLines is the stall test's line count (the 500k).
const floodLines = 500000
