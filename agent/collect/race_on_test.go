//go:build race

package collect

// raceEnabled: the test process (kfake, bulktest, the Kafka producer) runs
// about 30x slower under -race, so the end-to-end test moves fewer events.
const raceEnabled = true
