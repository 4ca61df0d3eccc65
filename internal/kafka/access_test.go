package kafka_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/testbed"
)

func TestACLCommand(t *testing.T) {
	for _, tc := range []struct {
		acl  kafka.ACL
		want string
	}{
		{
			kafka.ACLFor("User:plant-1", kafka.Need{Op: kmsg.ACLOperationDescribeConfigs, Resource: kmsg.ACLResourceTypeTopic, Name: "plant-1.sensors"}),
			"kafka-acls.sh --bootstrap-server b:9093 --command-config admin.properties --add --allow-principal User:plant-1 --operation DescribeConfigs --topic plant-1.sensors --resource-pattern-type literal",
		},
		{
			kafka.ACLFor("User:edgelink", kafka.Need{Op: kmsg.ACLOperationWrite, Resource: kmsg.ACLResourceTypeTransactionalId, Name: "edgelink-up-0"}),
			"kafka-acls.sh --bootstrap-server b:9093 --command-config admin.properties --add --allow-principal User:edgelink --operation Write --transactional-id edgelink-up-0 --resource-pattern-type literal",
		},
		{
			// A certificate's subject is quoted for the shell.
			kafka.ACL{Principal: "User:CN=edge 1,O=Acme's", Op: kmsg.ACLOperationRead, Resource: kmsg.ACLResourceTypeTopic, Name: "a", Pattern: kmsg.ACLResourcePatternTypePrefixed},
			`kafka-acls.sh --bootstrap-server b:9093 --command-config admin.properties --add --allow-principal 'User:CN=edge 1,O=Acme'\''s' --operation Read --topic a --resource-pattern-type prefixed`,
		},
	} {
		require.Equal(t, tc.want, tc.acl.Command("b:9093"))
	}
	a := kafka.ACLFor("User:u", kafka.Need{Op: kmsg.ACLOperationCreate, Resource: kmsg.ACLResourceTypeTopic, Name: "t"})
	require.Equal(t, "ALLOW User:u Create on topic t (literal)", a.String())
}

func TestPrincipal(t *testing.T) {
	files, err := testbed.WriteTLSFiles(t.TempDir(), "127.0.0.1")
	require.NoError(t, err)
	ctx := t.Context()
	for _, tc := range []struct {
		c    *config.Cluster
		want string
	}{
		{&config.Cluster{}, "User:ANONYMOUS"},
		{&config.Cluster{SASL: &config.SASL{Mechanism: config.MechanismSCRAMSHA512, Username: "plant-1", Password: "p"}}, "User:plant-1"},
		{&config.Cluster{TLS: &config.TLS{Enabled: true, CertFile: files.ClientCertFile, KeyFile: files.ClientKeyFile}}, "User:CN=edgelink"},
	} {
		require.Equal(t, tc.want, kafka.Principal(ctx, tc.c))
	}
	idp := testbed.StartOAuthServer(t, "c", "s", "plant-9", time.Minute)
	oauth := &config.Cluster{SASL: &config.SASL{Mechanism: config.MechanismOAuthBearer, TokenURL: idp.TokenURL, ClientID: "c", ClientSecret: "s"}}
	require.Equal(t, "User:plant-9", kafka.Principal(ctx, oauth))
}

// TestCheckAccessWithoutAuthorizerFake: a cluster without an authorizer
// grants everything, and answers for topics that do not exist.
func TestCheckAccessWithoutAuthorizerFake(t *testing.T) {
	c := testbed.StartFake(t)
	cl, _, err := kafka.Connect(t.Context(), &config.Cluster{Name: "fake", Bootstrap: c.ListenAddrs(), ClientID: "t"}, nil, kafka.Dial{}, kafka.AccessOpts()...)
	require.NoError(t, err)
	defer cl.Close()
	var needs []kafka.Need
	for _, op := range []kmsg.ACLOperation{kmsg.ACLOperationDescribe, kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationCreate, kmsg.ACLOperationDescribeConfigs} {
		needs = append(needs, kafka.Need{Op: op, Resource: kmsg.ACLResourceTypeTopic, Name: "missing"})
	}
	needs = append(needs, kafka.Need{Op: kmsg.ACLOperationWrite, Resource: kmsg.ACLResourceTypeTransactionalId, Name: "edgelink-up-0"})
	fs, err := kafka.CheckAccess(t.Context(), cl, needs)
	require.NoError(t, err)
	require.Len(t, fs, len(needs))
	for _, f := range fs {
		require.Equal(t, kafka.Granted, f.Verdict, "%s on %s: %s", kafka.OperationName(f.Op), f.Name, f.Note)
		require.False(t, f.Exists)
	}
}
