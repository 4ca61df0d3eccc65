package bundle

import "fmt"

// EndRange ends a partition's range at to, before the end declared at
// Create: an export cut short carries less of the partition, and says so,
// so that the next bundle starts at to. to must not be before the offset
// after the partition's last record added, nor after its declared end.
func (w *Writer) EndRange(topic string, partition int32, to int64) error {
	if w.err != nil {
		return w.err
	}
	p := w.parts[partitionName{topic, partition}]
	switch {
	case p == nil:
		return fmt.Errorf("end range of %s/%d: the bundle has no range for it", topic, partition)
	case to <= p.last || to < p.rng.From || to > p.rng.To:
		return fmt.Errorf("end range of %s/%d at %d: want an offset from %d to %d", topic, partition, to, max(p.last+1, p.rng.From), p.rng.To)
	}
	p.rng.To = to
	return nil
}
