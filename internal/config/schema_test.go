package config

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSchema checks the schema itself: key names are unique within a
// block, keys that exclude each other do so both ways, and every SASL key
// belongs to a mechanism.
func TestSchema(t *testing.T) {
	checkBlock(t, &rootBlock)
	checkBlock(t, &clusterBlock)
	checkBlock(t, &tlsBlock)
	checkBlock(t, &saslBlock)
	checkBlock(t, &linkBlock)
	checkBlock(t, &topicsBlock)
	checkBlock(t, &priorityBlock)
	checkBlock(t, &windowBlock)
	checkBlock(t, &tuningBlock)
	checkBlock(t, &httpBlock)
	checkBlock(t, &httpTLSBlock)

	sasl := append([]string{"mechanism"}, saslOAuthKeys...)
	sasl = append(sasl, saslPasswordKeys...)
	require.ElementsMatch(t, saslBlock.names(), sasl, "each SASL key is used by OAUTHBEARER or by the other mechanisms")
}

func checkBlock[T any](t *testing.T, b *block[T]) {
	t.Helper()
	names := b.names()
	for i, k := range b.keys {
		require.NotContains(t, names[:i], k.name, "%s: duplicate key", b.what)
		require.NotNil(t, k.value, "%s.%s: no value", b.what, k.name)
		if k.excludes != "" {
			require.True(t, slices.Contains(names, k.excludes), "%s.%s excludes an unknown key", b.what, k.name)
			require.Equal(t, k.name, b.key(k.excludes).excludes, "%s.%s: excludes must be mutual", b.what, k.name)
		}
	}
}
