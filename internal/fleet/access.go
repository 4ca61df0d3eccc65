package fleet

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
)

// Needs returns the permissions an agent with the fleet block f needs on
// the fleet cluster: to report, and, when managed, to follow the
// configuration channel and record its outcomes. Creating the topics is
// needed only while they are absent.
func Needs(f *config.Fleet) []kafka.Need {
	t := TopicsFor(f)
	topic := func(op kmsg.ACLOperation, name, why string) kafka.Need {
		return kafka.Need{Op: op, Resource: kmsg.ACLResourceTypeTopic, Name: name, For: why}
	}
	const (
		describe = kmsg.ACLOperationDescribe
		read     = kmsg.ACLOperationRead
		write    = kmsg.ACLOperationWrite
		create   = kmsg.ACLOperationCreate
	)
	var out []kafka.Need
	for _, name := range t.All() {
		c := topic(create, name, "create the fleet topic")
		c.IfAbsent = true
		out = append(out, topic(describe, name, "find the fleet topic"), c)
	}
	out = append(out, topic(write, t.Reports, "publish the site's reports"))
	if f != nil && f.Managed {
		out = append(out,
			topic(read, t.Config, "read the site's configuration revisions"),
			topic(read, t.State, "read back the site's configuration state after a restart"),
			topic(write, t.State, "record the site's configuration state"),
			topic(write, t.History, "record the outcome of each revision"))
	}
	return out
}
