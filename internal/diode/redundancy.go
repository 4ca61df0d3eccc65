package diode

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits of a Redundancy.
const (
	// MaxGroup is the most data plus parity datagrams in one FEC group.
	MaxGroup = 256
	// MaxRepeats is the most repeat delays.
	MaxRepeats = 8
	// MaxRepeatDelay is the longest repeat delay.
	MaxRepeatDelay = time.Hour
	// MinRepeatBuffer is the smallest repeat buffer.
	MinRepeatBuffer = 64 << 10
	// DefaultRepeatBuffer is the repeat buffer when none is given.
	DefaultRepeatBuffer = 64 << 20
)

// Redundancy is how a sender adds redundancy to heal loss without any
// acknowledgement.
type Redundancy struct {
	// Data and Parity set the Reed-Solomon FEC: per group of Data data
	// datagrams, Parity parity datagrams. Both 0 means no FEC. A group
	// flushed before it is full (the sender went idle) gets parity in the
	// same proportion, at least one.
	Data, Parity int
	// Repeat are timed repetitions: every data and parity datagram is sent
	// again after each of these delays from its first transmission. They
	// heal loss bursts longer than FEC can.
	Repeat []time.Duration
	// RepeatBuffer is how many bytes of datagrams are kept for repetition;
	// 0 is [DefaultRepeatBuffer]. A datagram that falls out of it before
	// its repeat time is not repeated (counted in SenderStats).
	RepeatBuffer int64
}

// DefaultRedundancy is FEC 16+4 without repetition: "fec 16+4".
func DefaultRedundancy() Redundancy { return Redundancy{Data: 16, Parity: 4} }

// Info is what a heartbeat tells of r.
func (r Redundancy) Info() RedundancyInfo {
	return RedundancyInfo{Data: r.Data, Parity: r.Parity, Repeat: append([]time.Duration(nil), r.Repeat...)}
}

// String renders r as [ParseRedundancy] reads it.
func (r Redundancy) String() string {
	var parts []string
	if r.Parity > 0 {
		parts = append(parts, fmt.Sprintf("fec %d+%d", r.Data, r.Parity))
	}
	if len(r.Repeat) > 0 {
		ds := make([]string, len(r.Repeat))
		for i, d := range r.Repeat {
			ds[i] = d.String()
		}
		parts = append(parts, "repeat "+strings.Join(ds, " "))
		if r.RepeatBuffer != 0 && r.RepeatBuffer != DefaultRepeatBuffer {
			parts = append(parts, "buffer "+formatSize(r.RepeatBuffer))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Validate checks r's limits.
func (r Redundancy) Validate() error {
	switch {
	case r.Data < 0 || r.Parity < 0:
		return fmt.Errorf("fec %d+%d: counts cannot be negative", r.Data, r.Parity)
	case r.Data == 0 && r.Parity > 0:
		return fmt.Errorf("fec %d+%d: a group needs at least 1 data datagram", r.Data, r.Parity)
	case r.Data > 0 && r.Parity == 0:
		return fmt.Errorf("fec %d+%d: parity must be at least 1; write \"fec none\" for no FEC", r.Data, r.Parity)
	case r.Data+r.Parity > MaxGroup:
		return fmt.Errorf("fec %d+%d: at most %d datagrams in a group", r.Data, r.Parity, MaxGroup)
	case len(r.Repeat) > MaxRepeats:
		return fmt.Errorf("repeat: at most %d delays", MaxRepeats)
	case r.RepeatBuffer < 0 || (r.RepeatBuffer > 0 && r.RepeatBuffer < MinRepeatBuffer):
		return fmt.Errorf("buffer %d: at least %s", r.RepeatBuffer, formatSize(MinRepeatBuffer))
	}
	for i, d := range r.Repeat {
		switch {
		case d <= 0:
			return fmt.Errorf("repeat %s: a delay must be positive", d)
		case d > MaxRepeatDelay:
			return fmt.Errorf("repeat %s: at most %s", d, MaxRepeatDelay)
		case i > 0 && d <= r.Repeat[i-1]:
			return fmt.Errorf("repeat %s after %s: delays must increase", d, r.Repeat[i-1])
		}
	}
	return nil
}

// ParseRedundancy reads a redundancy from its configuration text: "none",
// or clauses separated by commas, each at most once:
//
//	fec 16+4          Reed-Solomon, 4 parity datagrams per 16 data datagrams ("fec none": no FEC)
//	repeat 2s 20s     send every datagram again after 2 s and after 20 s ("repeat none": never)
//	buffer 64MiB      bytes kept for repetition (B, KiB, MiB, GiB)
//
// A clause left out is off (buffer: its default). For example
// "fec 16+4, repeat 2s 20s".
func ParseRedundancy(s string) (Redundancy, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return Redundancy{}, fmt.Errorf("redundancy is empty; write none, or for example \"fec 16+4, repeat 2s 20s\"")
	}
	if strings.EqualFold(text, "none") {
		return Redundancy{}, nil
	}
	var r Redundancy
	seen := make(map[string]bool)
	for clause := range strings.SplitSeq(text, ",") {
		fields := strings.Fields(clause)
		if len(fields) == 0 {
			return Redundancy{}, fmt.Errorf("redundancy %q: empty clause; clauses are separated by one comma", s)
		}
		name := strings.ToLower(fields[0])
		args := fields[1:]
		if seen[name] {
			return Redundancy{}, fmt.Errorf("redundancy %q: %s given twice", s, name)
		}
		seen[name] = true
		var err error
		switch name {
		case "fec":
			r.Data, r.Parity, err = parseFEC(args)
		case "repeat":
			r.Repeat, err = parseRepeat(args)
		case "buffer":
			r.RepeatBuffer, err = parseBuffer(args)
		case "none":
			err = fmt.Errorf("none stands alone")
		default:
			err = fmt.Errorf("unknown clause %q; use fec, repeat or buffer, for example \"fec 16+4, repeat 2s 20s\"", fields[0])
		}
		if err != nil {
			return Redundancy{}, fmt.Errorf("redundancy %q: %w", s, err)
		}
	}
	if err := r.Validate(); err != nil {
		return Redundancy{}, fmt.Errorf("redundancy %q: %w", s, err)
	}
	if seen["buffer"] && len(r.Repeat) == 0 {
		return Redundancy{}, fmt.Errorf("redundancy %q: buffer without repeat; the buffer only holds datagrams to repeat", s)
	}
	return r, nil
}

func parseFEC(args []string) (data, parity int, err error) {
	if len(args) != 1 {
		return 0, 0, fmt.Errorf("fec takes one argument, DATA+PARITY such as 16+4, or none")
	}
	if strings.EqualFold(args[0], "none") {
		return 0, 0, nil
	}
	ds, ps, ok := strings.Cut(args[0], "+")
	if !ok {
		return 0, 0, fmt.Errorf("fec %s: want DATA+PARITY such as 16+4", args[0])
	}
	data, err1 := strconv.Atoi(ds)
	parity, err2 := strconv.Atoi(ps)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("fec %s: want DATA+PARITY such as 16+4", args[0])
	}
	if data < 1 {
		return 0, 0, fmt.Errorf("fec %s: a group needs at least 1 data datagram", args[0])
	}
	return data, parity, nil
}

func parseRepeat(args []string) ([]time.Duration, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("repeat takes one or more delays such as 2s 20s, or none")
	}
	if len(args) == 1 && strings.EqualFold(args[0], "none") {
		return nil, nil
	}
	ds := make([]time.Duration, 0, len(args))
	for _, a := range args {
		d, err := time.ParseDuration(a)
		if err != nil {
			return nil, fmt.Errorf("repeat %s: not a duration such as 2s or 500ms", a)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

var sizeUnits = []struct {
	suffix string
	n      int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

func parseBuffer(args []string) (int64, error) {
	if len(args) != 1 {
		return 0, fmt.Errorf("buffer takes one size such as 64MiB")
	}
	s := args[0]
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("buffer %s: want a size such as 64MiB (units B, KiB, MiB, GiB)", args[0])
	}
	return n * mult, nil
}

func formatSize(n int64) string {
	for _, u := range sizeUnits {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
