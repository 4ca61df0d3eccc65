package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/signing"
)

// Validate checks a configuration document as a site would before it
// applies it (see config.ParseRevision), for site (any name when empty):
// ${VAR} references that are not set here are not errors, since they
// resolve at the sites. It returns the problems as config.Errors.
func Validate(doc []byte, site string) error {
	if site == "" {
		site = "site"
	}
	local := []byte("site: " + site + "\n")
	_, err := config.ParseRevision("document", doc, "", local, os.LookupEnv)
	var errs config.Errors
	if !errors.As(err, &errs) {
		return err
	}
	var left config.Errors
	for _, e := range errs {
		if strings.HasPrefix(e.Msg, "environment variable ") && strings.HasSuffix(e.Msg, " is not set") {
			continue
		}
		left = append(left, e)
	}
	if len(left) == 0 {
		return nil
	}
	return left
}

// PublishOptions is what Publish publishes.
type PublishOptions struct {
	// Targets are the sites or selectors the revision is for; each gets
	// its own signed revision, all with the same number.
	Targets  []Target
	Document []byte
	Signer   *signing.Signer
	Note     string
	// Now is the time of issue; time.Now when zero.
	Now time.Time
}

// Publish signs a new revision of the configuration for each target and
// writes it to the config topic (replacing the target's previous one) and
// to the history, through a client built from opts. The revision number
// is one more than the highest in the config topic. It returns the
// revisions published.
func Publish(ctx context.Context, opts []kgo.Opt, topics Topics, po PublishOptions) ([]Revision, error) {
	if len(po.Targets) == 0 {
		return nil, errors.New("publish revision: no target")
	}
	cl, err := kgo.NewClient(append(opts, kgo.RecordDeliveryTimeout(30*time.Second))...)
	if err != nil {
		return nil, fmt.Errorf("create fleet client: %w", err)
	}
	defer cl.Close()
	if err := EnsureTopics(ctx, kadm.NewClient(cl), topics); err != nil {
		return nil, err
	}
	var highest int64
	err = readToEnd(ctx, opts, []string{topics.Config}, func(r *kgo.Record) {
		if r.Value == nil {
			return
		}
		if env, err := UnmarshalEnvelope(r.Value); err == nil {
			if rev, err := env.Peek(); err == nil {
				highest = max(highest, rev.Number)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read the current revisions: %w", err)
	}
	now := po.Now
	if now.IsZero() {
		now = time.Now()
	}
	issuer := Issuer{Key: po.Signer.Name(), KeyID: po.Signer.KeyID()}
	if u, err := user.Current(); err == nil {
		issuer.User = u.Username
	}
	issuer.Host, _ = os.Hostname()
	var (
		recs []*kgo.Record
		out  []Revision
	)
	for _, t := range po.Targets {
		rev := Revision{
			Format: RevisionFormat, Number: highest + 1, Target: t, IssuedAt: now.UTC(),
			IssuedBy: issuer, Note: po.Note, Document: string(po.Document),
		}
		env, err := Seal(rev, po.Signer)
		if err != nil {
			return nil, err
		}
		value, err := env.Marshal()
		if err != nil {
			return nil, err
		}
		target := t
		hist, err := json.Marshal(HistoryEvent{
			Time: now.UTC(), Kind: HistoryPublished, Target: &target, Revision: rev.Number,
			By: issuer.String(), Note: po.Note, Hash: env.Hash(), Envelope: &env,
		})
		if err != nil {
			return nil, fmt.Errorf("encode history event: %w", err)
		}
		recs = append(recs,
			&kgo.Record{Topic: topics.Config, Key: []byte(t.Key()), Value: value},
			&kgo.Record{Topic: topics.History, Key: []byte(t.Key()), Value: hist})
		out = append(out, rev)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return nil, fmt.Errorf("publish revision %d: %w", highest+1, err)
	}
	return out, nil
}
