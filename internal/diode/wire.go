package diode

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"

	"golang.org/x/crypto/chacha20poly1305"
)

// The clear header of every datagram, authenticated as additional data:
//
//	0  magic "ED"
//	2  version
//	3  kind
//	4  session id (16 bytes)
//	20 sequence number (8 bytes, big endian)
//
// The sealed payload follows: the plaintext, then a 16-byte tag.
const (
	magic0, magic1 = 'E', 'D'
	wireVersion    = 1
	headerLen      = 28
	tagLen         = chacha20poly1305.Overhead
	overheadLen    = headerLen + tagLen
)

// Kinds of datagrams.
const (
	kindData      = 1 // one fragment of a batch, in an FEC group
	kindParity    = 2 // one parity shard of an FEC group
	kindHeartbeat = 3 // one fragment of a heartbeat, outside FEC groups, never repeated
)

// The group header opens every plaintext:
//
//	0  FEC group id (8 bytes)
//	8  index: of the data datagram in its group, or of the parity shard
//	9  data datagrams in the group (parity) or configured (data; 0 = no FEC)
//	10 parity datagrams in the group (parity) or configured (data)
//	11 reserved, 0
//
// The body follows. A data body is one fragment:
//
//	0  message id (8 bytes)
//	8  fragment index (4 bytes)
//	12 fragment count (4 bytes)
//	16 fragment length n (2 bytes)
//	18 n bytes of the message
//
// followed, in a recovered datagram, by zero padding. A parity body is the
// parity shard.
const (
	groupHeaderLen = 12
	fragHeaderLen  = 18
	// dataOverhead is what a data datagram adds to its fragment.
	dataOverhead = overheadLen + groupHeaderLen + fragHeaderLen
)

// Datagram sizes.
const (
	// DefaultDatagramSize fits an Ethernet MTU of 1500 with IPv4 or IPv6
	// and UDP headers.
	DefaultDatagramSize = 1400
	// MinDatagramSize is the smallest datagram a sender accepts.
	MinDatagramSize = 256
	// MaxDatagramSize is the largest: below UDP's limit of 65507 bytes.
	MaxDatagramSize = 65000
	// MaxMessage is the largest encoded batch or heartbeat.
	MaxMessage = 256 << 20
)

var errAuth = errors.New("datagram fails authentication")

type header struct {
	kind    byte
	session SessionID
	seq     uint64
}

func (h *header) put(b []byte) {
	b[0], b[1], b[2], b[3] = magic0, magic1, wireVersion, h.kind
	copy(b[4:20], h.session[:])
	binary.BigEndian.PutUint64(b[20:28], h.seq)
}

func nonceOf(b []byte) []byte { return b[4:28] } // session id and sequence number

// newAEAD returns the cipher of k.
func newAEAD(k Key) cipher.AEAD {
	a, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		panic("diode: " + err.Error()) // the key has the right size by its type
	}
	return a
}

// seal appends the datagram of h and plaintext to dst.
func seal(aead cipher.AEAD, dst []byte, h *header, plaintext []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, headerLen)...)
	hb := dst[start:]
	h.put(hb)
	return aead.Seal(dst, nonceOf(hb), plaintext, hb[:headerLen])
}

// open authenticates datagram d and decrypts its payload in place. The
// plaintext aliases d.
func open(aead cipher.AEAD, d []byte) (header, []byte, error) {
	if len(d) < overheadLen || d[0] != magic0 || d[1] != magic1 || d[2] != wireVersion {
		return header{}, nil, errAuth
	}
	pt, err := aead.Open(d[headerLen:headerLen], nonceOf(d), d[headerLen:], d[:headerLen])
	if err != nil {
		return header{}, nil, errAuth
	}
	var h header
	h.kind = d[3]
	copy(h.session[:], d[4:20])
	h.seq = binary.BigEndian.Uint64(d[20:28])
	return h, pt, nil
}

// groupHeader is the first part of every plaintext.
type groupHeader struct {
	group        uint64
	index        uint8
	data, parity uint8
}

func (g *groupHeader) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, g.group)
	return append(b, g.index, g.data, g.parity, 0)
}

func parseGroupHeader(pt []byte) (groupHeader, []byte, bool) {
	if len(pt) < groupHeaderLen {
		return groupHeader{}, nil, false
	}
	return groupHeader{
		group:  binary.BigEndian.Uint64(pt),
		index:  pt[8],
		data:   pt[9],
		parity: pt[10],
	}, pt[groupHeaderLen:], true
}

// fragment is one piece of a message.
type fragment struct {
	msg          uint64
	index, count uint32
	data         []byte
}

func (f *fragment) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, f.msg)
	b = binary.BigEndian.AppendUint32(b, f.index)
	b = binary.BigEndian.AppendUint32(b, f.count)
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.data)))
	return append(b, f.data...)
}

// parseFragment reads a data body; trailing bytes (padding) are ignored.
func parseFragment(body []byte) (fragment, bool) {
	if len(body) < fragHeaderLen {
		return fragment{}, false
	}
	f := fragment{
		msg:   binary.BigEndian.Uint64(body),
		index: binary.BigEndian.Uint32(body[8:]),
		count: binary.BigEndian.Uint32(body[12:]),
	}
	n := int(binary.BigEndian.Uint16(body[16:]))
	if len(body) < fragHeaderLen+n || f.count == 0 || f.index >= f.count {
		return fragment{}, false
	}
	f.data = body[fragHeaderLen : fragHeaderLen+n]
	return f, true
}
