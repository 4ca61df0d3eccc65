package diode

// windowBits is how many ids a window remembers behind the highest: a
// million FEC groups or messages, far more than any repeat delay spans.
const windowBits = 1 << 20

// window remembers which ids (FEC groups, messages) of a session are done,
// for the windowBits ids below the highest marked; older ids count as done.
// Ids grow by one from a sender, so the window slides forward.
type window struct {
	bits []uint64
	hi   uint64 // one above the highest id marked; 0 when none is
}

func (w *window) has(id uint64) bool {
	switch {
	case w.hi == 0 || id >= w.hi:
		return false
	case w.hi-id > windowBits:
		return true
	}
	return w.bits[(id%windowBits)/64]&(1<<(id%64)) != 0
}

func (w *window) mark(id uint64) {
	if w.bits == nil {
		w.bits = make([]uint64, windowBits/64)
	}
	if id < w.hi && w.hi-id > windowBits {
		return // older than the window: counts as done already
	}
	if id >= w.hi {
		// Forget what the window slides over.
		if w.hi == 0 || id-w.hi >= windowBits {
			clear(w.bits)
		} else {
			for i := w.hi; i <= id; i++ {
				w.bits[(i%windowBits)/64] &^= 1 << (i % 64)
			}
		}
		w.hi = id + 1
	}
	w.bits[(id%windowBits)/64] |= 1 << (id % 64)
}
