package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/edgelink/edgelink/internal/config"
)

// Need is a permission a principal needs on one cluster: an operation on a
// named resource (a topic or a transactional id), and what for.
type Need struct {
	Op       kmsg.ACLOperation
	Resource kmsg.ACLResourceType
	Name     string
	// For says what the permission is used for, e.g. "read the source topic".
	For string
	// IfAbsent marks a permission needed only while the topic does not
	// exist (Create).
	IfAbsent bool
	// Later marks a permission not needed to start, only when the source
	// changes (a config or the partition count of a topic).
	Later bool
	// Prefixed marks a permission on every name that starts with Name;
	// Probe lists the names checked for it.
	Prefixed bool
	Probe    []string
}

// Verdict is what a cluster said about a Need.
type Verdict int

// Verdicts.
const (
	// Granted: the principal has the permission.
	Granted Verdict = iota
	// Missing: the cluster denied it.
	Missing
	// NotNeeded: an IfAbsent permission on a topic that exists.
	NotNeeded
	// Unknown: the cluster's answer did not say; Finding.Note says why.
	Unknown
)

func (v Verdict) String() string {
	switch v {
	case Granted:
		return "granted"
	case Missing:
		return "missing"
	case NotNeeded:
		return "not needed"
	default:
		return "unknown"
	}
}

// Finding is the verdict on one Need.
type Finding struct {
	Need
	Verdict Verdict
	// Exists tells, for a topic, whether it exists (as far as the
	// principal may know).
	Exists bool
	// Note explains an Unknown verdict.
	Note string
}

// ACL is an access control entry that allows a principal an operation on
// a resource, as an operator grants it with kafka-acls.sh.
type ACL struct {
	// Principal is e.g. "User:plant-1".
	Principal string
	Op        kmsg.ACLOperation
	Resource  kmsg.ACLResourceType
	Name      string
	// Pattern is literal (the exact name) or prefixed (every name that
	// starts with Name).
	Pattern kmsg.ACLResourcePatternType
}

// ACLFor returns the literal ACL that grants need to principal.
func ACLFor(principal string, need Need) ACL {
	pattern := kmsg.ACLResourcePatternTypeLiteral
	if need.Prefixed {
		pattern = kmsg.ACLResourcePatternTypePrefixed
	}
	return ACL{Principal: principal, Op: need.Op, Resource: need.Resource, Name: need.Name, Pattern: pattern}
}

// String reads like "ALLOW User:plant-1 Write on topic plant-1.alerts (literal)".
func (a ACL) String() string {
	return fmt.Sprintf("ALLOW %s %s on %s %s (%s)", a.Principal, OperationName(a.Op), resourceName(a.Resource), a.Name, patternName(a.Pattern))
}

// Command returns the kafka-acls.sh command that grants a, run by an
// administrator against bootstrap (admin.properties holds the
// administrator's connection settings).
func (a ACL) Command(bootstrap string) string {
	var res string
	switch a.Resource {
	case kmsg.ACLResourceTypeTopic:
		res = "--topic " + shellQuote(a.Name)
	case kmsg.ACLResourceTypeTransactionalId:
		res = "--transactional-id " + shellQuote(a.Name)
	case kmsg.ACLResourceTypeGroup:
		res = "--group " + shellQuote(a.Name)
	case kmsg.ACLResourceTypeCluster:
		res = "--cluster"
	default:
		res = "--" + strings.ToLower(a.Resource.String()) + " " + shellQuote(a.Name)
	}
	return fmt.Sprintf("kafka-acls.sh --bootstrap-server %s --command-config admin.properties --add --allow-principal %s --operation %s %s --resource-pattern-type %s",
		bootstrap, shellQuote(a.Principal), OperationName(a.Op), res, patternName(a.Pattern))
}

// OperationName returns the operation as kafka-acls.sh spells it (Read,
// DescribeConfigs, …).
func OperationName(op kmsg.ACLOperation) string {
	switch op {
	case kmsg.ACLOperationRead:
		return "Read"
	case kmsg.ACLOperationWrite:
		return "Write"
	case kmsg.ACLOperationCreate:
		return "Create"
	case kmsg.ACLOperationDelete:
		return "Delete"
	case kmsg.ACLOperationAlter:
		return "Alter"
	case kmsg.ACLOperationDescribe:
		return "Describe"
	case kmsg.ACLOperationClusterAction:
		return "ClusterAction"
	case kmsg.ACLOperationDescribeConfigs:
		return "DescribeConfigs"
	case kmsg.ACLOperationAlterConfigs:
		return "AlterConfigs"
	case kmsg.ACLOperationIdempotentWrite:
		return "IdempotentWrite"
	case kmsg.ACLOperationAll:
		return "All"
	default:
		return op.String()
	}
}

func resourceName(r kmsg.ACLResourceType) string {
	switch r {
	case kmsg.ACLResourceTypeTopic:
		return "topic"
	case kmsg.ACLResourceTypeTransactionalId:
		return "transactional id"
	case kmsg.ACLResourceTypeGroup:
		return "group"
	case kmsg.ACLResourceTypeCluster:
		return "cluster"
	default:
		return strings.ToLower(r.String())
	}
}

func patternName(p kmsg.ACLResourcePatternType) string {
	if p == kmsg.ACLResourcePatternTypePrefixed {
		return "prefixed"
	}
	return "literal"
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and . _ - : / @ = ,.
func shellQuote(s string) string {
	plain := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-:/@=,", r)
	}
	safe := s != "" && strings.IndexFunc(s, func(r rune) bool { return !plain(r) }) < 0
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Principal returns the principal the cluster sees for c's credentials
// with Kafka's default principal builder: User:NAME for PLAIN and SCRAM,
// the token's subject for OAUTHBEARER (a token is fetched for it), the
// certificate's subject for mutual TLS without SASL, and User:ANONYMOUS
// otherwise. Brokers with custom principal mapping rules may differ.
func Principal(ctx context.Context, c *config.Cluster) string {
	switch {
	case c.SASL != nil && c.SASL.Mechanism == config.MechanismOAuthBearer:
		tok, err := sharedTokenSource(c.SASL).Token(ctx)
		if sub := TokenSubject(tok); err == nil && sub != "" {
			return "User:" + sub
		}
		return "User:<subject of the OAuth token>"
	case c.SASL != nil:
		return "User:" + c.SASL.Username
	case c.TLS != nil && c.TLS.Enabled && c.TLS.CertFile != "":
		if cert, err := loadLeaf(c.TLS.CertFile, c.TLS.KeyFile); err == nil {
			return "User:" + cert.Subject.String()
		}
		return "User:<subject of " + c.TLS.CertFile + ">"
	default:
		return "User:ANONYMOUS"
	}
}

// AccessOpts are the client options CheckAccess needs: produce and fetch
// requests that name topics (versions before topic ids), so that a probe
// can name a topic that does not exist yet.
func AccessOpts() []kgo.Opt {
	v := kversion.Stable()
	v.SetMaxKeyVersion(int16(kmsg.Produce), 12)
	v.SetMaxKeyVersion(int16(kmsg.Fetch), 12)
	return []kgo.Opt{kgo.MaxVersions(v)}
}

// CheckAccess finds out, without DescribeAcls, which of needs the
// client's principal has. It writes and creates nothing:
//
//   - a Metadata request with the topics' authorized operations answers for
//     topics that exist;
//   - for topics that do not exist (or are hidden), requests the broker
//     checks for authorization before it finds the topic missing: a
//     validate-only CreateTopics, IncrementalAlterConfigs and
//     CreatePartitions, a DescribeConfigs, a Produce with no records and a
//     Fetch of at most one byte;
//   - for a transactional id, an AddPartitionsToTxn with no producer id,
//     which the broker authorizes (Write on the id) and then refuses
//     without touching any transaction.
//
// The client should be built with AccessOpts.
func CheckAccess(ctx context.Context, cl *kgo.Client, needs []Need) ([]Finding, error) {
	var topics []string
	for _, n := range needs {
		if n.Resource == kmsg.ACLResourceTypeTopic && !slices.Contains(topics, n.Name) {
			topics = append(topics, n.Name)
		}
	}
	meta, err := describeTopics(ctx, cl, topics)
	if err != nil {
		return nil, err
	}
	type key struct {
		res  kmsg.ACLResourceType
		name string
		op   kmsg.ACLOperation
	}
	probed := make(map[key]Finding)
	out := make([]Finding, 0, len(needs))
	for _, n := range needs {
		k := key{n.Resource, n.Name, n.Op}
		f, ok := probed[k]
		if !ok {
			switch n.Resource {
			case kmsg.ACLResourceTypeTopic:
				f, err = checkTopic(ctx, cl, meta[n.Name], n.Op)
			case kmsg.ACLResourceTypeTransactionalId:
				f, err = checkTransactionalIDs(ctx, cl, n, topics)
			case kmsg.ACLResourceTypeGroup:
				if n.Op == kmsg.ACLOperationDescribe {
					f, err = checkGroupDescribe(ctx, cl, n.Name)
				} else {
					f, err = checkGroup(ctx, cl, n.Name)
				}
			default:
				f = Finding{Verdict: Unknown, Note: "not checked"}
			}
			if err != nil {
				return nil, err
			}
			probed[k] = f
		}
		f.Need = n
		if n.IfAbsent && n.Resource == kmsg.ACLResourceTypeTopic && f.Exists {
			f.Verdict, f.Note = NotNeeded, ""
		}
		out = append(out, f)
	}
	return out, nil
}

// topicMeta is what a Metadata request says about a topic.
type topicMeta struct {
	name string
	// exists: the topic exists; hidden: the principal may not describe it
	// (Kafka does not say whether it exists).
	exists, hidden bool
	// ops is the bit set of authorized operations (1 << op); known is false
	// when the broker did not say.
	ops   int32
	known bool
	err   error
}

func describeTopics(ctx context.Context, cl *kgo.Client, topics []string) (map[string]topicMeta, error) {
	out := make(map[string]topicMeta, len(topics))
	if len(topics) == 0 {
		return out, nil
	}
	req := kmsg.NewPtrMetadataRequest()
	req.IncludeTopicAuthorizedOperations = true
	req.AllowAutoTopicCreation = false
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("describe topics: %w", err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		m := topicMeta{name: *t.Topic, ops: t.AuthorizedOperations, known: t.AuthorizedOperations != math.MinInt32}
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case err == nil, errors.Is(err, kerr.LeaderNotAvailable):
			m.exists = true
		case errors.Is(err, kerr.UnknownTopicOrPartition):
		case errors.Is(err, kerr.TopicAuthorizationFailed):
			m.hidden = true
		default:
			m.err = err
		}
		out[m.name] = m
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			out[t] = topicMeta{name: t, err: errors.New("not in the metadata answer")}
		}
	}
	return out, nil
}

func checkTopic(ctx context.Context, cl *kgo.Client, m topicMeta, op kmsg.ACLOperation) (Finding, error) {
	f := Finding{Exists: m.exists}
	if m.err != nil {
		f.Verdict, f.Note = Unknown, fmt.Sprintf("describe topic %s: %v", m.name, m.err)
		return f, nil
	}
	if m.exists && m.known {
		// Kafka answers with the operations the principal may perform,
		// implied ones included (Read implies Describe).
		if m.ops&(1<<uint(op)) != 0 {
			f.Verdict = Granted
		} else {
			f.Verdict = Missing
		}
		return f, nil
	}
	var err error
	switch op {
	case kmsg.ACLOperationDescribe:
		switch {
		case m.hidden:
			f.Verdict = Missing
		case !m.exists:
			f.Verdict = Granted // UNKNOWN_TOPIC_OR_PARTITION is told only to who may describe it
		default:
			f.Verdict, f.Note = Unknown, "the broker did not report authorized operations"
		}
		return f, nil
	case kmsg.ACLOperationCreate:
		err = probeCreate(ctx, cl, m.name)
	case kmsg.ACLOperationWrite:
		err = probeProduce(ctx, cl, m.name)
	case kmsg.ACLOperationRead:
		err = probeFetch(ctx, cl, m.name)
	case kmsg.ACLOperationDescribeConfigs:
		err = probeDescribeConfigs(ctx, cl, m.name)
	case kmsg.ACLOperationAlterConfigs:
		err = probeAlterConfigs(ctx, cl, m.name)
	case kmsg.ACLOperationAlter:
		err = probeCreatePartitions(ctx, cl, m.name)
	default:
		f.Verdict, f.Note = Unknown, "no probe for "+OperationName(op)
		return f, nil
	}
	var kerrErr *kerr.Error
	switch {
	case err == nil:
		f.Verdict = Granted
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
		f.Verdict = Missing
	case errors.As(err, &kerrErr):
		// Any other answer from the broker comes after its authorization
		// check (the topic is missing, the request was validate-only).
		f.Verdict = Granted
	default:
		return f, fmt.Errorf("check %s on topic %s: %w", OperationName(op), m.name, err)
	}
	return f, nil
}

// probeCreate asks to create topic in validate-only mode.
func probeCreate(ctx context.Context, cl *kgo.Client, topic string) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.ValidateOnly = true
	req.TimeoutMillis = 5000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, -1
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		if t.Topic == topic {
			return kerr.ErrorForCode(t.ErrorCode)
		}
	}
	return errors.New("no answer for the topic")
}

// probeProduce sends a Produce request without records: the broker checks
// Write, then that the topic exists, then refuses the empty batch, so
// nothing is ever written.
func probeProduce(ctx context.Context, cl *kgo.Client, topic string) error {
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = 0
	rp.Records = []byte{} // not nil: an empty, not a null, record set
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			return kerr.ErrorForCode(p.ErrorCode)
		}
	}
	return errors.New("no answer for the topic")
}

// probeFetch fetches at most one byte from partition 0 without waiting.
func probeFetch(ctx context.Context, cl *kgo.Client, topic string) error {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MinBytes = 0
	req.MaxBytes = 1
	req.IsolationLevel = 1
	req.SessionID = 0
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = 0
	rp.FetchOffset = 0
	rp.PartitionMaxBytes = 1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			return kerr.ErrorForCode(p.ErrorCode)
		}
	}
	return errors.New("no answer for the topic")
}

func probeDescribeConfigs(ctx context.Context, cl *kgo.Client, topic string) error {
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	rr.ResourceName = topic
	rr.ConfigNames = []string{"cleanup.policy"}
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, r := range resp.Resources {
		return kerr.ErrorForCode(r.ErrorCode)
	}
	return errors.New("no answer for the topic")
}

// probeAlterConfigs validates an empty change of the topic's configs.
func probeAlterConfigs(ctx context.Context, cl *kgo.Client, topic string) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = true
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	rr.ResourceName = topic
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, r := range resp.Resources {
		return kerr.ErrorForCode(r.ErrorCode)
	}
	return errors.New("no answer for the topic")
}

// probeCreatePartitions validates growing the topic to 2 partitions.
func probeCreatePartitions(ctx context.Context, cl *kgo.Client, topic string) error {
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.ValidateOnly = true
	req.TimeoutMillis = 5000
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, 2
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		return kerr.ErrorForCode(t.ErrorCode)
	}
	return errors.New("no answer for the topic")
}

// checkTransactionalID finds out whether the principal may write with
// transactional id id. It sends AddPartitionsToTxn with producer id -1,
// which the broker authorizes before anything else and then refuses
// (INVALID_PRODUCER_ID_MAPPING, or a topic error): no transaction,
// including one of a running link, is touched. The request names one
// partition, since its answer is per partition.
// checkTransactionalIDs checks a need on a transactional id, or on each of
// its probes when it is prefixed; the first that is not granted decides.
func checkTransactionalIDs(ctx context.Context, cl *kgo.Client, n Need, topics []string) (Finding, error) {
	ids := n.Probe
	if len(ids) == 0 {
		ids = []string{n.Name}
	}
	var f Finding
	for _, id := range ids {
		var err error
		if f, err = checkTransactionalID(ctx, cl, id, topics); err != nil || f.Verdict != Granted {
			return f, err
		}
	}
	return f, nil
}

// checkGroup checks Read on a consumer group with a Heartbeat of a member
// that does not exist: the broker authorizes it (Read on the group), then
// refuses it without touching the group.
func checkGroup(ctx context.Context, cl *kgo.Client, group string) (Finding, error) {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group = group
	req.Generation = -1
	req.MemberID = "edgelink-access-check"
	return groupFinding(ctx, group, func() error {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	})
}

// checkGroupDescribe checks Describe on a consumer group with a
// DescribeGroups request, which reads and changes nothing.
func checkGroupDescribe(ctx context.Context, cl *kgo.Client, group string) (Finding, error) {
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	return groupFinding(ctx, group, func() error {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Groups) == 0 {
			return err
		}
		return kerr.ErrorForCode(resp.Groups[0].ErrorCode)
	})
}

// groupFinding asks a group's coordinator with ask (again while it is not
// available yet) and reads the verdict from its error.
func groupFinding(ctx context.Context, group string, ask func() error) (Finding, error) {
	var err error
	for deadline := time.Now().Add(coordinatorWait); ; {
		err = ask()
		if !coordinatorPending(err) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return Finding{}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	switch {
	case errors.Is(err, kerr.GroupAuthorizationFailed):
		return Finding{Verdict: Missing}, nil
	case coordinatorPending(err):
		return Finding{Verdict: Unknown, Note: "the group coordinator is not available: " + err.Error()}, nil
	case err == nil, errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.IllegalGeneration),
		errors.Is(err, kerr.GroupIDNotFound), errors.Is(err, kerr.RebalanceInProgress):
		return Finding{Verdict: Granted}, nil
	}
	if _, ok := errors.AsType[*kerr.Error](err); !ok {
		return Finding{}, fmt.Errorf("check group %s: %w", group, err)
	}
	return Finding{Verdict: Unknown, Note: err.Error()}, nil
}

func checkTransactionalID(ctx context.Context, cl *kgo.Client, id string, topics []string) (Finding, error) {
	topic := "__edgelink.access-check"
	if len(topics) > 0 {
		topic = topics[0]
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.TransactionalID = id
	req.ProducerID = -1
	req.ProducerEpoch = -1
	rt := kmsg.NewAddPartitionsToTxnRequestTopic()
	rt.Topic = topic
	rt.Partitions = []int32{0}
	req.Topics = append(req.Topics, rt)
	var err error
	// A new cluster creates its transaction state topic on first use: wait
	// for the coordinator a little.
	for deadline := time.Now().Add(coordinatorWait); ; {
		var resp *kmsg.AddPartitionsToTxnResponse
		resp, err = req.RequestWith(ctx, cl)
		if err == nil {
			err = firstTxnError(resp)
		}
		if !coordinatorPending(err) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return Finding{}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	f := Finding{}
	switch {
	case err == nil:
		f.Verdict = Granted
	case errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		f.Verdict = Missing
	case coordinatorPending(err):
		f.Verdict, f.Note = Unknown, "the transaction coordinator is not available: "+err.Error()
	default:
		if _, ok := errors.AsType[*kerr.Error](err); !ok {
			return f, fmt.Errorf("check transactional id %s: %w", id, err)
		}
		f.Verdict = Granted
	}
	return f, nil
}

// coordinatorWait bounds the wait for a transaction coordinator.
const coordinatorWait = 15 * time.Second

func coordinatorPending(err error) bool {
	return errors.Is(err, kerr.CoordinatorNotAvailable) || errors.Is(err, kerr.CoordinatorLoadInProgress) || errors.Is(err, kerr.NotCoordinator)
}

func firstTxnError(resp *kmsg.AddPartitionsToTxnResponse) error {
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return err
			}
		}
	}
	for _, tx := range resp.Transactions {
		for _, t := range tx.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// loadLeaf loads a certificate and its key and returns the certificate.
func loadLeaf(certFile, keyFile string) (*x509.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return pair.Leaf, nil
}
