package link

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/diode"
)

// DiodeState is where a link sent through a diode stands at its site
// (stored in AirGapTopic in the source cluster): per partition
// ("topic/partition") the offset from which a restarted sender sends
// again, and the offset the link started the partition at (its origin, so
// that a receiver that never heard the beginning reports it missing).
type DiodeState struct {
	Positions map[string]int64 `json:"positions"`
	Origins   map[string]int64 `json:"origins"`
	Saved     time.Time        `json:"saved"`
}

// diodeBatchBytes bounds the payload of one batch a sender sends: a batch
// is one message, all of whose datagrams must arrive.
const diodeBatchBytes = 256 << 10

// diodeSaveEvery is how often a sender records where it stands.
const diodeSaveEvery = 5 * time.Second

// runDiodeSender is edgelink run for a link sent through a data diode: it
// reads the source and sends every record one way over UDP, never
// connecting to the destination. It retries a lost source with backoff.
func (l *Link) runDiodeSender(ctx context.Context) error {
	return l.retry(ctx, l.diodeSession, func(err error) bool {
		var fatal *diodeConfigError
		return errors.As(err, &fatal) || errors.Is(err, ErrTransform)
	})
}

// diodeConfigError is a diode setting the sender cannot run with.
type diodeConfigError struct{ err error }

func (e *diodeConfigError) Error() string { return e.err.Error() }
func (e *diodeConfigError) Unwrap() error { return e.err }

// DiodeSettings reads a link's diode key and redundancy.
func DiodeSettings(d *config.Diode) (diode.Key, diode.Redundancy, error) {
	key, err := diode.LoadKeyFile(d.KeyFile)
	if err != nil {
		return key, diode.Redundancy{}, fmt.Errorf("diode.key_file: %w", err)
	}
	red, err := diode.ParseRedundancy(d.Redundancy)
	if err != nil {
		return key, red, fmt.Errorf("diode.redundancy: %w", err)
	}
	return key, red, nil
}

// diodeSender is one session of a diode sender: it owns its clients and
// its socket.
type diodeSender struct {
	l       *Link
	src     *kafkaSource
	opts    []kgo.Opt
	send    *diode.Sender
	f       fetcher
	keep    func(*kgo.Record) (bool, error)
	state   DiodeState
	topics  map[string]sourceTopic
	configs map[string]topicConfig
	// at is, per partition read, the next offset to send; history holds
	// recent snapshots of it, so that what is saved is where the sender
	// stood longer ago than it repeats (a restart sends that again: what
	// a repeat would have healed).
	at      map[tp]int64
	history []positionsAt
	cluster string
	hold    time.Duration
}

type positionsAt struct {
	at  time.Time
	pos map[tp]int64
}

func (l *Link) diodeSession(ctx context.Context) error {
	d := l.cfg.Diode
	if d.SendTo == "" {
		return &diodeConfigError{errors.New("diode.send_to is not set: name the receiver's host:port")}
	}
	key, red, err := DiodeSettings(d)
	if err != nil {
		return &diodeConfigError{err}
	}
	tune := tuningFor(l.cfg)
	opts, err := clientOpts(l.src, tune, l.opts.SourceDialer, l.logger)
	if err != nil {
		return err
	}
	src, err := newKafkaSource(append(slices.Clip(opts), consumerOpts(tune.fetchMaxWait)...), tune.adminTimeout())
	if err != nil {
		return err
	}
	defer src.close()
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "udp", d.SendTo)
	if err != nil {
		return &diodeConfigError{fmt.Errorf("diode.send_to %s: %w", d.SendTo, err)}
	}
	sender, err := diode.NewSender(conn, diode.SenderOptions{Key: key, Rate: d.Rate, Redundancy: red, Logger: l.logger})
	if err != nil {
		_ = conn.Close()
		return &diodeConfigError{err}
	}
	defer func() { _ = sender.Close() }()
	s := &diodeSender{l: l, src: src, opts: opts, send: sender, at: make(map[tp]int64)}
	for _, r := range red.Repeat {
		s.hold = max(s.hold, r)
	}
	if s.keep, err = RecordTransform(l.cfg); err != nil {
		return &diodeConfigError{err}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := sender.Run(gctx)
		if gctx.Err() != nil {
			return nil
		}
		return err
	})
	g.Go(func() error {
		defer func() {
			// A last record of where the sender stands (what it sent, less
			// what a repeat would have healed).
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tune.adminTimeout())
			defer cancel()
			if s.f != nil {
				_ = s.save(sctx, time.Now())
				s.f.Close()
			}
		}()
		return s.run(gctx)
	})
	return g.Wait()
}

func (s *diodeSender) run(ctx context.Context) error {
	l := s.l
	actx, cancel := context.WithTimeout(ctx, tuningFor(l.cfg).adminTimeout())
	var err error
	s.cluster, err = s.src.clusterID(actx)
	if err == nil {
		_, err = readAirGap(actx, s.opts, airGapKey(l.id, "diode"), &s.state)
	}
	cancel()
	if err != nil {
		return err
	}
	if s.state.Positions == nil {
		s.state.Positions, s.state.Origins = make(map[string]int64), make(map[string]int64)
	}
	if s.f, err = s.src.fetcher(); err != nil {
		return err
	}
	if err := s.discover(ctx, true); err != nil {
		return err
	}
	l.setState(StateLive, nil)
	nextDiscovery := time.Now().Add(l.opts.DiscoveryInterval)
	nextBeat, nextSave := time.Now(), time.Now().Add(diodeSaveEvery)
	for {
		now := time.Now()
		if !now.Before(nextBeat) {
			nextBeat = now.Add(time.Second)
			if err := s.heartbeat(ctx); err != nil {
				return err
			}
			if err := s.measure(ctx); err != nil {
				return err
			}
		}
		if !now.Before(nextSave) {
			nextSave = now.Add(diodeSaveEvery)
			if err := s.save(ctx, now); err != nil {
				return err
			}
		}
		if !now.Before(nextDiscovery) {
			nextDiscovery = now.Add(l.opts.DiscoveryInterval)
			if err := s.discover(ctx, false); err != nil {
				return err
			}
		}
		pctx, cancel := context.WithDeadline(ctx, nextBeat)
		fs := s.f.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("fetch %s[%d] from source: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if ferr == nil {
				ferr = s.sendPartition(ctx, tp{fp.Topic, fp.Partition}, fp.Records)
			}
		})
		if ferr != nil {
			return ferr
		}
	}
}

// sendPartition sends a fetched run of one partition's records as
// batches, through the link's transforms.
func (s *diodeSender) sendPartition(ctx context.Context, k tp, recs []*kgo.Record) error {
	l := s.l
	from, ok := s.at[k]
	if !ok {
		return nil // no longer read
	}
	b := &diode.Batch{Topic: k.Topic, Partition: k.Partition, From: from}
	var size, in, inBytes, kept, keptBytes, filtered int64
	flush := func(to int64) error {
		b.To = to
		if err := s.send.Send(ctx, b); err != nil {
			return fmt.Errorf("send %s offsets %d..%d: %w", k, b.From, b.To-1, err)
		}
		s.at[k] = to
		b = &diode.Batch{Topic: k.Topic, Partition: k.Partition, From: to}
		size = 0
		return nil
	}
	for _, r := range recs {
		if r.Offset < from {
			continue
		}
		if r.Attrs.IsControl() {
			continue
		}
		in++
		inBytes += int64(len(r.Key) + len(r.Value))
		if s.keep != nil {
			ok, err := s.keep(r)
			if err != nil {
				if l.cfg.OnError != config.OnErrorSkip {
					return fmt.Errorf("%w: %s offset %d: %w", ErrTransform, k, r.Offset, err)
				}
				l.logger.Warn("record not sent: the link's transforms cannot handle it", "topic", k.Topic, "partition", k.Partition, "offset", r.Offset, "err", err)
				ok = false
			}
			if !ok {
				filtered++
				continue
			}
		}
		n := int64(len(r.Key) + len(r.Value))
		if size > 0 && size+n > diodeBatchBytes {
			if err := flush(r.Offset); err != nil {
				return err
			}
		}
		b.Records = append(b.Records, toDiode(r))
		size += n
		kept++
		keptBytes += n
		l.lastTS[k] = r.Timestamp
	}
	if n := len(recs); n > 0 && recs[n-1].Offset+1 > b.From {
		if err := flush(recs[n-1].Offset + 1); err != nil {
			return err
		}
	}
	l.update(func(st *Status) {
		st.Records += kept
		st.Bytes += keptBytes
		st.RecordsIn += in
		st.BytesIn += inBytes
		st.FilteredRecords += filtered
	})
	return nil
}

// toDiode turns a source record into a diode record (sharing its memory:
// the sender encodes it before Send returns).
func toDiode(r *kgo.Record) diode.Record {
	out := diode.Record{Offset: r.Offset, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value}
	if len(r.Headers) > 0 {
		out.Headers = make([]diode.Header, len(r.Headers))
		for i, h := range r.Headers {
			out.Headers[i] = diode.Header{Key: h.Key, Value: h.Value}
		}
	}
	return out
}

// discover lists the selected topics and starts reading partitions not read
// yet: from where the sender stood, or (the first time) from the link's
// start position, or, for a partition that appeared later, its beginning.
func (s *diodeSender) discover(ctx context.Context, first bool) error {
	l := s.l
	ctx, cancel := context.WithTimeout(ctx, tuningFor(l.cfg).adminTimeout())
	defer cancel()
	topics, err := selectedTopics(ctx, s.src, l.cfg)
	if err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(topics))
	cfgs, err := s.src.configs(ctx, names...)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	starts, err := s.src.offsets(ctx, startOffset, names...)
	if err != nil {
		return fmt.Errorf("list source offsets: %w", err)
	}
	var latest map[tp]int64
	if first && len(s.state.Origins) == 0 && l.cfg.Start == config.StartLatest {
		if latest, err = s.src.offsets(ctx, endOffset, names...); err != nil {
			return fmt.Errorf("list source offsets: %w", err)
		}
	}
	add := make(map[string]map[int32]kgo.Offset)
	for _, t := range names {
		for p := range topics[t].partitions {
			k := tp{t, p}
			if _, reading := s.at[k]; reading {
				continue
			}
			pk := partitionKey(k)
			at, ok := s.state.Positions[pk]
			switch {
			case ok && at < starts[k]:
				l.lostRecords(k, at, starts[k])
				at = starts[k]
			case ok:
			case latest != nil:
				at = latest[k]
			default:
				at = starts[k]
			}
			if _, ok := s.state.Origins[pk]; !ok {
				s.state.Origins[pk] = at
			}
			s.at[k] = at
			if add[t] == nil {
				add[t] = make(map[int32]kgo.Offset)
			}
			add[t][p] = kgo.NewOffset().At(at)
		}
	}
	s.topics, s.configs = topics, cfgs
	if len(add) > 0 {
		s.f.AddConsumePartitions(add)
		l.update(func(st *Status) { st.Partitions = len(s.at) })
	}
	return nil
}

// heartbeat tells the receiver the topics and how far each partition was
// sent.
func (s *diodeSender) heartbeat(ctx context.Context) error {
	h := &diode.Heartbeat{
		SourceCluster: s.cluster, Site: s.l.id.Site, Link: s.l.id.Link,
		Positions: make(map[diode.TopicPartition]int64, len(s.at)), Origins: make(map[diode.TopicPartition]int64, len(s.at)),
	}
	for _, t := range slices.Sorted(maps.Keys(s.topics)) {
		st := s.topics[t]
		h.Topics = append(h.Topics, diode.Topic{Name: t, ID: st.id, Partitions: st.partitions, Config: s.configs[t].set})
	}
	for k, at := range s.at {
		dk := diode.TopicPartition{Topic: k.Topic, Partition: k.Partition}
		h.Positions[dk] = at
		if o, ok := s.state.Origins[partitionKey(k)]; ok {
			h.Origins[dk] = o
		}
	}
	return s.send.Heartbeat(ctx, h)
}

// save records where the sender stood longer ago than it repeats.
func (s *diodeSender) save(ctx context.Context, now time.Time) error {
	s.history = append(s.history, positionsAt{at: now, pos: maps.Clone(s.at)})
	// The newest snapshot old enough; every older one can go.
	keep := 0
	for i, h := range s.history {
		if now.Sub(h.at) >= s.hold {
			keep = i
		}
	}
	s.history = s.history[keep:]
	for k, at := range s.history[0].pos {
		s.state.Positions[partitionKey(k)] = at
	}
	s.state.Saved = now.UTC()
	return writeAirGap(ctx, s.opts, airGapKey(s.l.id, "diode"), &s.state)
}

// measure sets the link's backlog: what the source holds that was not
// sent yet.
func (s *diodeSender) measure(ctx context.Context) error {
	l := s.l
	ctx, cancel := context.WithTimeout(ctx, tuningFor(l.cfg).adminTimeout())
	defer cancel()
	names := slices.Sorted(maps.Keys(s.topics))
	ends, err := s.src.offsets(ctx, stableOffset, names...)
	if err != nil {
		return fmt.Errorf("measure backlog: %w", err)
	}
	var backlog int64
	per := make(map[string]*TopicStatus, len(names))
	for _, t := range names {
		per[t] = &TopicStatus{Source: t, Destination: l.destination(t), Partitions: int(s.topics[t].partitions), Priority: l.cfg.PriorityOf(t)}
	}
	for k, at := range s.at {
		if n := ends[k] - at; n > 0 && per[k.Topic] != nil {
			backlog += n
			per[k.Topic].BacklogRecords += n
		}
	}
	stats := s.send.Stats()
	now := time.Now()
	l.update(func(st *Status) {
		st.BacklogRecords, st.BacklogAt = backlog, now
		st.WireBytes = stats.Bytes
		st.Topics = st.Topics[:0:0]
		for _, t := range names {
			st.Topics = append(st.Topics, *per[t])
		}
		st.Diode = &DiodeStatus{Role: "sender", Session: s.send.Session().String(), Sender: &stats}
	})
	return nil
}

// lostRecords reports source records deleted before they were sent.
func (l *Link) lostRecords(k tp, from, to int64) {
	msg := fmt.Sprintf("records %d..%d of %s were deleted at the source before they were sent", from, to-1, k)
	l.logger.Error(msg, "topic", k.Topic, "partition", k.Partition, "from", from, "to", to-1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.LostRecords += to - from
	l.status.LastError = msg
	l.eventLocked(EventLost, msg)
}
