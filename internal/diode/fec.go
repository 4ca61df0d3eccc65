package diode

import (
	"fmt"

	"github.com/klauspost/reedsolomon"
)

// codecs caches Reed-Solomon encoders by group shape. It is not safe for
// concurrent use; its owner serialises calls.
type codecs map[[2]int]reedsolomon.Encoder

func (c codecs) get(data, parity int) (reedsolomon.Encoder, error) {
	key := [2]int{data, parity}
	if e, ok := c[key]; ok {
		return e, nil
	}
	e, err := reedsolomon.New(data, parity, reedsolomon.WithMaxGoroutines(1))
	if err != nil {
		return nil, fmt.Errorf("fec %d+%d: %w", data, parity, err)
	}
	c[key] = e
	return e, nil
}

// parityFor is how many parity shards a group of n data datagrams gets when
// a full group of data gets parity: the same proportion, rounded up.
func parityFor(n, data, parity int) int {
	if n >= data {
		return parity
	}
	return max(1, (n*parity+data-1)/data)
}
