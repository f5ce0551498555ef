package kafka

import (
	"encoding/binary"
	"math"
	"testing"
)

// TestVarintLen: the length messageSize counts for each varint is that of
// the zig-zag varint Kafka's record format writes (binary.AppendVarint is
// the same encoding), at every boundary of a 7-bit group.
func TestVarintLen(t *testing.T) {
	vals := []int64{0, 1, -1, math.MaxInt64, math.MinInt64}
	for shift := 6; shift < 63; shift += 7 {
		b := int64(1) << shift
		vals = append(vals, b-1, b, b+1, -b, -b-1)
	}
	for _, v := range vals {
		if got, want := varintLen(v), len(binary.AppendVarint(nil, v)); got != want {
			t.Errorf("varintLen(%d) = %d, want %d", v, got, want)
		}
	}
}
