package config_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/config"
)

func TestYAML(t *testing.T) {
	cfg, err := parseFile(t, "testdata/full.good.yaml")
	require.NoError(t, err)
	out, err := cfg.YAML()
	require.NoError(t, err)
	again, err := config.ParseWithEnv("full.good.yaml", out, lookup(nil))
	require.NoError(t, err, "%s", out)
	require.Equal(t, cfg, again)
	require.Contains(t, string(out), "username: $${NOT_A_VARIABLE}")

	red, err := cfg.Redacted().YAML()
	require.NoError(t, err)
	require.Equal(t, 3, strings.Count(string(red), "[redacted]"), "%s", red)
	for _, secret := range []string{"s3cret", "oauth-s3cret", "http-t0ken"} {
		require.NotContains(t, string(red), secret)
	}

	var nilCfg *config.Config
	_, err = nilCfg.YAML()
	require.Error(t, err)
}
