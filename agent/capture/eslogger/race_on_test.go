//go:build race

package eslogger

// floodLines is smaller under -race, which slows the reader about tenfold;
// the full 500k-line run is the default (non-race) test run.
const floodLines = 50000
