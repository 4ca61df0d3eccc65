package faultnet_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/faultnet"
)

// eventually polls f until it returns nil or d passed, then fails with
// f's last error.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// udpPair is a relay between a connected sender socket and a receiving one.
type udpPair struct {
	relay *faultnet.UDPRelay
	in    net.Conn       // the sender's
	out   net.PacketConn // the receiver's
}

func newUDPPair(t *testing.T, seed uint64) *udpPair {
	t.Helper()
	out, err := (&net.ListenConfig{}).ListenPacket(t.Context(), "udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = out.Close() })
	// The test reads after sending: its socket holds everything.
	require.NoError(t, out.(*net.UDPConn).SetReadBuffer(8<<20))
	relay, err := faultnet.ListenUDP(out.LocalAddr().String(), seed)
	require.NoError(t, err)
	t.Cleanup(func() { _ = relay.Close() })
	in, err := (&net.Dialer{}).DialContext(t.Context(), "udp", relay.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = in.Close() })
	return &udpPair{relay: relay, in: in, out: out}
}

// send sends datagrams numbered from..to-1, each 8 bytes of its number and
// 56 bytes of padding.
func (p *udpPair) send(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		d := make([]byte, 64)
		binary.BigEndian.PutUint64(d, uint64(i))
		_, err := p.in.Write(d)
		require.NoError(t, err)
	}
}

// receive reads datagrams until none came for quiet.
func (p *udpPair) receive(t *testing.T, quiet time.Duration) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 2048)
	for {
		require.NoError(t, p.out.SetReadDeadline(time.Now().Add(quiet)))
		n, _, err := p.out.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			require.True(t, ne.Timeout())
			return got
		}
		got = append(got, append([]byte(nil), buf[:n]...))
	}
}

func numbers(ds [][]byte) []int {
	out := make([]int, 0, len(ds))
	for _, d := range ds {
		if len(d) == 64 {
			out = append(out, int(binary.BigEndian.Uint64(d)))
		}
	}
	return out
}

func seq(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestUDPRelayForwardsInOrder(t *testing.T) {
	p := newUDPPair(t, 1)
	p.send(t, 0, 200)
	require.Equal(t, seq(0, 200), numbers(p.receive(t, 200*time.Millisecond)))
	require.Equal(t, faultnet.UDPStats{Received: 200, Forwarded: 200}, p.relay.Stats())
}

func TestUDPRelayLossAndDuplicates(t *testing.T) {
	p := newUDPPair(t, 2)
	p.relay.SetFaults(faultnet.UDPFaults{Loss: 0.3, Duplicate: 0.2})
	p.send(t, 0, 1000)
	got := numbers(p.receive(t, 200*time.Millisecond))
	st := p.relay.Stats()
	require.Equal(t, int64(1000), st.Received)
	require.InDelta(t, 300, st.Dropped, 60)
	require.InDelta(t, 140, st.Duplicated, 50)
	require.Equal(t, st.Received-st.Dropped+st.Duplicated, st.Forwarded)
	require.Len(t, got, int(st.Forwarded))
	require.True(t, slices.IsSorted(got), "loss and duplication keep the order")
	require.Len(t, slices.Compact(slices.Clone(got)), int(st.Received-st.Dropped))

	// The same seed makes the same choices.
	q := newUDPPair(t, 2)
	q.relay.SetFaults(faultnet.UDPFaults{Loss: 0.3, Duplicate: 0.2})
	q.send(t, 0, 1000)
	require.Equal(t, got, numbers(q.receive(t, 200*time.Millisecond)))
}

func TestUDPRelayReorders(t *testing.T) {
	p := newUDPPair(t, 3)
	p.relay.SetFaults(faultnet.UDPFaults{Reorder: 0.1, ReorderDepth: 4, ReorderHold: 50 * time.Millisecond})
	p.send(t, 0, 500)
	got := numbers(p.receive(t, 300*time.Millisecond))
	st := p.relay.Stats()
	require.Positive(t, st.Reordered)
	require.False(t, slices.IsSorted(got), "some datagrams came late")
	sorted := slices.Sorted(slices.Values(got))
	require.Equal(t, seq(0, 500), sorted, "every datagram came once, the held ones included")
	for i, n := range got {
		require.Less(t, max(i-n, n-i), 5, "held back by a few datagrams at most")
	}
}

func TestUDPRelayReleasesHeldDatagramAfterHold(t *testing.T) {
	p := newUDPPair(t, 4)
	p.relay.SetFaults(faultnet.UDPFaults{Reorder: 1, ReorderHold: 30 * time.Millisecond})
	start := time.Now()
	p.send(t, 0, 1)
	got := numbers(p.receive(t, 300*time.Millisecond))
	require.Equal(t, []int{0}, got, "a held datagram goes after its hold even if nothing follows")
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
}

func TestUDPRelayInjectsGarbageAndFlippedCopies(t *testing.T) {
	p := newUDPPair(t, 5)
	p.relay.SetFaults(faultnet.UDPFaults{Garbage: 1, Flip: 1})
	p.send(t, 0, 50)
	got := p.receive(t, 200*time.Millisecond)
	st := p.relay.Stats()
	require.Equal(t, int64(50), st.Garbage)
	require.Equal(t, int64(50), st.Flipped)
	require.Len(t, got, 150)
	for i := range 50 {
		orig, garbage, flipped := got[3*i], got[3*i+1], got[3*i+2]
		require.Equal(t, i, int(binary.BigEndian.Uint64(orig)))
		require.NotEmpty(t, garbage)
		require.LessOrEqual(t, len(garbage), len(orig))
		require.Len(t, flipped, len(orig))
		diff := 0
		for j := range orig {
			diff += bits.OnesCount8(orig[j] ^ flipped[j])
		}
		require.Equal(t, 1, diff, "datagram %d: one bit flipped", i)
	}
}

func TestUDPRelayBurst(t *testing.T) {
	p := newUDPPair(t, 6)
	p.relay.Burst(0, 150*time.Millisecond, 1)
	p.send(t, 0, 20)
	require.Empty(t, p.receive(t, 50*time.Millisecond), "all lost in the burst")
	eventually(t, 2*time.Second, func() error {
		p.send(t, 20, 21)
		if got := numbers(p.receive(t, 20*time.Millisecond)); !slices.Equal(got, []int{20}) {
			return fmt.Errorf("after the burst: got %v", got)
		}
		return nil
	})
	st := p.relay.Stats()
	require.GreaterOrEqual(t, st.Dropped, int64(20))
	require.Equal(t, st.Received-st.Dropped, st.Forwarded)
}

func TestUDPRelayFaultsChangeAtRunTime(t *testing.T) {
	p := newUDPPair(t, 7)
	p.relay.SetFaults(faultnet.UDPFaults{Loss: 1})
	require.Equal(t, 1.0, p.relay.Faults().Loss)
	p.send(t, 0, 10)
	require.Empty(t, p.receive(t, 50*time.Millisecond))
	p.relay.SetFaults(faultnet.UDPFaults{})
	p.send(t, 10, 20)
	require.Equal(t, seq(10, 20), numbers(p.receive(t, 100*time.Millisecond)))
}

func TestUDPRelayClose(t *testing.T) {
	p := newUDPPair(t, 8)
	p.relay.SetFaults(faultnet.UDPFaults{Reorder: 1, ReorderHold: time.Hour})
	p.send(t, 0, 1) // held when closed: dropped
	eventually(t, time.Second, func() error {
		if p.relay.Stats().Received != 1 {
			return fmt.Errorf("not received yet")
		}
		return nil
	})
	require.NoError(t, p.relay.Close())
	require.NoError(t, p.relay.Close(), "twice is fine")
	_, _ = p.in.Write(bytes.Repeat([]byte{1}, 64))
	require.Empty(t, p.receive(t, 50*time.Millisecond))
	require.Equal(t, int64(1), p.relay.Stats().Received, "nothing read after Close")
}
