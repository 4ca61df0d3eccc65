package observe

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/edgelink/edgelink/internal/link"
)

// States lists every link state, in the order the state metric reports
// them.
var States = []link.State{
	link.StateStarting, link.StateCatchingUp, link.StateLive,
	link.StateDisconnected, link.StateFailed, link.StateStopped, link.StateFailedOver,
}

// Metric descriptions. Labels are bounded: link, topic, and a few fixed
// values of state and reason.
var (
	descBuildInfo = prometheus.NewDesc("edgelink_build_info",
		"Always 1; labelled with the agent's version and Go version.", []string{"version", "go_version"}, nil)
	descUp = prometheus.NewDesc("edgelink_ready",
		"1 when the agent is ready (see /readyz), else 0.", nil, nil)
	descState = prometheus.NewDesc("edgelink_link_state",
		"1 for the link's current state, 0 for the others.", []string{"link", "state"}, nil)
	descStateSeconds = prometheus.NewDesc("edgelink_link_state_seconds",
		"Time the link has been in its current state.", []string{"link"}, nil)
	descConnected = prometheus.NewDesc("edgelink_link_connected",
		"1 when the link is connected (catching up or live), else 0.", []string{"link"}, nil)
	descRecords = prometheus.NewDesc("edgelink_link_records_total",
		"Records committed at the destination.", []string{"link"}, nil)
	descBytes = prometheus.NewDesc("edgelink_link_bytes_total",
		"Payload bytes (keys, values, headers) committed at the destination.", []string{"link"}, nil)
	descWireBytes = prometheus.NewDesc("edgelink_link_wire_bytes_total",
		"Bytes written to the destination brokers, framing and compression included.", []string{"link"}, nil)
	descTransactions = prometheus.NewDesc("edgelink_link_transactions_total",
		"Destination transactions (or at-least-once batches) committed.", []string{"link"}, nil)
	descLost = prometheus.NewDesc("edgelink_link_lost_records_total",
		"Source records deleted by retention before they were replicated.", []string{"link"}, nil)
	descSkipped = prometheus.NewDesc("edgelink_link_skipped_records_total",
		"Records not replicated: refused by the destination and recorded (reason=refused), or from the destination in the first place (reason=loop).",
		[]string{"link", "reason"}, nil)
	descPartitions = prometheus.NewDesc("edgelink_link_partitions",
		"Source partitions the link replicates.", []string{"link"}, nil)
	descSlotsHeld = prometheus.NewDesc("edgelink_link_slots_held",
		"Slots of the link this agent holds open.", []string{"link"}, nil)
	descSlots = prometheus.NewDesc("edgelink_link_slots",
		"The link's number of slots.", []string{"link"}, nil)
	descAgents = prometheus.NewDesc("edgelink_link_agents",
		"Agents sharing the link, as this agent last saw its group.", []string{"link"}, nil)
	descGeneration = prometheus.NewDesc("edgelink_link_group_generation",
		"Generation of the link's group; each rebalance raises it.", []string{"link"}, nil)
	descBacklogRecords = prometheus.NewDesc("edgelink_link_backlog_records",
		"Source offsets not yet replicated (during an outage: the last measurement plus what the source gained since).", []string{"link"}, nil)
	descBacklogEstimated = prometheus.NewDesc("edgelink_link_backlog_estimated",
		"1 while the backlog is extrapolated from the source's end offsets because the link cannot measure it (an outage), else 0.", []string{"link"}, nil)
	descBacklogBytes = prometheus.NewDesc("edgelink_link_backlog_bytes",
		"Estimated payload bytes not yet replicated.", []string{"link"}, nil)
	descBacklogAge = prometheus.NewDesc("edgelink_link_backlog_age_seconds",
		"Approximate age of the oldest record not yet replicated; 0 without a backlog.", []string{"link"}, nil)
	descDrainETA = prometheus.NewDesc("edgelink_link_drain_eta_seconds",
		"Estimated time to replicate the backlog at the recent rate; 0 when unknown or without a backlog.", []string{"link"}, nil)
	descDataLoss = prometheus.NewDesc("edgelink_link_data_loss_seconds",
		"Estimated time until source retention deletes records not yet replicated; 0 when it is deleting them now; absent when unknown or without a backlog.", []string{"link"}, nil)
	descBacklogAt = prometheus.NewDesc("edgelink_link_backlog_measured_timestamp_seconds",
		"When the backlog was last measured (Unix time); 0 before the first measurement.", []string{"link"}, nil)
	descTopicRecords = prometheus.NewDesc("edgelink_topic_records_total",
		"Records of a source topic committed at the destination.", []string{"link", "topic"}, nil)
	descTopicBytes = prometheus.NewDesc("edgelink_topic_bytes_total",
		"Payload bytes of a source topic committed at the destination.", []string{"link", "topic"}, nil)
	descTopicBacklog = prometheus.NewDesc("edgelink_topic_backlog_records",
		"Source offsets of a topic not yet replicated.", []string{"link", "topic"}, nil)
	descTopicPartitions = prometheus.NewDesc("edgelink_topic_partitions",
		"Partitions of a replicated source topic.", []string{"link", "topic"}, nil)
	descTopicPriority = prometheus.NewDesc("edgelink_topic_priority",
		"Weight of a source topic while the link has a backlog.", []string{"link", "topic"}, nil)
)

// collector renders the status model's snapshot as metrics when Prometheus
// scrapes.
type collector struct{ s *Server }

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descBuildInfo, descUp, descState, descStateSeconds, descConnected, descRecords, descBytes, descWireBytes,
		descTransactions, descLost, descSkipped, descPartitions, descSlotsHeld, descSlots, descAgents, descGeneration, descBacklogRecords, descBacklogEstimated, descBacklogBytes,
		descBacklogAge, descDrainETA, descDataLoss, descBacklogAt, descTopicRecords, descTopicBytes, descTopicBacklog,
		descTopicPartitions, descTopicPriority,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	// The links that exist now: a link a reload removed leaves no series.
	snap := c.s.model.Snapshot()
	version := snap.Version
	if version == "" {
		version = "dev"
	}
	gauge(descBuildInfo, 1, version, runtime.Version())
	gauge(descUp, boolValue(snap.Ready))
	for _, l := range snap.Links {
		name := l.Name
		for _, state := range States {
			gauge(descState, boolValue(l.State == string(state)), name, string(state))
		}
		gauge(descStateSeconds, l.StateSeconds, name)
		gauge(descConnected, boolValue(l.State == string(link.StateCatchingUp) || l.State == string(link.StateLive)), name)
		counter(descRecords, l.Records, name)
		counter(descBytes, l.Bytes, name)
		counter(descWireBytes, l.WireBytes, name)
		counter(descTransactions, l.Transactions, name)
		counter(descLost, l.LostRecords, name)
		counter(descSkipped, l.SkippedRecords, name, "refused")
		counter(descSkipped, l.SkippedLoops, name, "loop")
		gauge(descPartitions, float64(l.Partitions), name)
		if sh := l.Sharing; sh != nil {
			gauge(descSlotsHeld, float64(len(sh.Held)), name)
			gauge(descSlots, float64(sh.SlotCount), name)
			gauge(descAgents, float64(len(sh.Agents)), name)
			gauge(descGeneration, float64(sh.Generation), name)
		}
		gauge(descBacklogRecords, float64(l.Backlog.Records), name)
		gauge(descBacklogEstimated, boolValue(l.Backlog.Estimated), name)
		gauge(descBacklogBytes, float64(l.Backlog.Bytes), name)
		gauge(descBacklogAge, l.Backlog.AgeSeconds, name)
		gauge(descDrainETA, l.Backlog.DrainETASeconds, name)
		if in := l.Backlog.DataLossInSeconds; in != nil {
			gauge(descDataLoss, *in, name)
		}
		at := 0.0
		if l.Backlog.MeasuredAt != nil {
			at = float64(l.Backlog.MeasuredAt.UnixMilli()) / 1e3
		}
		gauge(descBacklogAt, at, name)
		for _, t := range l.Topics {
			counter(descTopicRecords, t.Records, name, t.Source)
			counter(descTopicBytes, t.Bytes, name, t.Source)
			gauge(descTopicBacklog, float64(t.BacklogRecords), name, t.Source)
			gauge(descTopicPartitions, float64(t.Partitions), name, t.Source)
			gauge(descTopicPriority, float64(t.Priority), name, t.Source)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newRegistry returns a registry with a server's metrics (c) and the Go
// runtime and process metrics.
func newRegistry(c prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		c,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}
