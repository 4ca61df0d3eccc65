package diode

import (
	"testing"
	"time"
)

// fuzzKey is the key of the fuzz corpus.
var fuzzKey = Key{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

// FuzzDatagram feeds a receiver arbitrary datagrams, as they come from the
// network and, sealed with the right key, as an authentic sender of
// arbitrary plaintext would, and decodes whatever they complete. Nothing
// may panic, and garbage never passes authentication.
func FuzzDatagram(f *testing.F) {
	c := &captureConn{}
	s, err := NewSender(c, SenderOptions{Key: fuzzKey, Redundancy: Redundancy{Data: 2, Parity: 1}, DatagramSize: MinDatagramSize})
	if err != nil {
		f.Fatal(err)
	}
	tp := TopicPartition{"fuzz", 0}
	if err := s.Send(f.Context(), batchOf(tp, 0, 3)); err != nil {
		f.Fatal(err)
	}
	if err := s.Heartbeat(f.Context(), &Heartbeat{Site: "s", Topics: []Topic{{Name: "fuzz", Partitions: 1}}}); err != nil {
		f.Fatal(err)
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	aead := newAEAD(fuzzKey)
	for _, d := range c.datagrams() {
		f.Add(d)
		if _, pt, err := open(aead, append([]byte(nil), d...)); err == nil {
			f.Add(append([]byte{d[3]}, pt...)) // a plaintext, behind its kind
		}
	}
	f.Add([]byte{})
	f.Add([]byte("ED\x01\x01"))

	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReceiver(nil, ReceiverOptions{Key: fuzzKey, MaxBuffered: 1 << 20})
		now := time.Unix(1000, 0)
		forged := r.forged.Load()
		for _, m := range r.handle(append([]byte(nil), in...), now) {
			_, _, _ = decodeMessage(m.b)
		}
		if len(in) > 0 && r.forged.Load() == forged && r.Stats().Session.IsZero() {
			t.Fatalf("a datagram neither forged nor of a session")
		}
		if len(in) == 0 {
			return
		}
		// The same bytes as the plaintext of an authentic datagram.
		h := header{kind: in[0], session: SessionID{9}, seq: 1}
		d := seal(aead, nil, &h, in[1:])
		for _, m := range r.handle(d, now) {
			_, _, _ = decodeMessage(m.b)
		}
		r.sweep(now.Add(time.Hour))
		if r.buffered != 0 {
			t.Fatalf("%d bytes held after every session expired", r.buffered)
		}
		// And as a complete message.
		_, _, _ = decodeMessage(in)
	})
}
