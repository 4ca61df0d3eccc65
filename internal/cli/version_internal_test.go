package cli

import (
	"bytes"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// stamp sets what make release stamps with -ldflags -X, for one test.
func stamp(t *testing.T, v, c, d string) {
	t.Helper()
	oldV, oldC, oldD := version, commit, date
	version, commit, date = v, c, d
	t.Cleanup(func() { version, commit, date = oldV, oldC, oldD })
}

func TestWriteVersion(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Deps:      []*debug.Module{{Path: "github.com/twmb/franz-go", Version: "v1.22.3"}},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "1111111111111111111111111111111111111111"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
		},
	}
	for _, tc := range []struct {
		name                  string
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  string
	}{
		{
			name:    "stamped by make release",
			version: "v1.4.0", commit: "fa076d7a1b2c3d4e5f60718293a4b5c6d7e8f901", date: "2026-11-29T09:37:19Z",
			bi: &debug.BuildInfo{GoVersion: bi.GoVersion, Deps: bi.Deps},
			want: "edgelink v1.4.0\n" +
				"go        go1.26.8\n" +
				"commit    fa076d7a1b2c3d4e5f60718293a4b5c6d7e8f901\n" +
				"built     2026-11-29T09:37:19Z\n" +
				"franz-go  v1.22.3\n",
		},
		{
			name:    "the stamps win over what go build recorded",
			version: "v1.4.0", commit: "fa076d7a1b2c3d4e5f60718293a4b5c6d7e8f901", date: "2026-11-29T09:37:19Z",
			bi: bi,
			want: "edgelink v1.4.0\n" +
				"go        go1.26.8\n" +
				"commit    fa076d7a1b2c3d4e5f60718293a4b5c6d7e8f901\n" +
				"built     2026-11-29T09:37:19Z\n" +
				"franz-go  v1.22.3\n",
		},
		{
			name:    "plain go build in a checkout",
			version: "dev",
			bi:      bi,
			want: "edgelink dev\n" +
				"go        go1.26.8\n" +
				"commit    1111111111111111111111111111111111111111\n" +
				"built     2026-01-02T03:04:05Z\n" +
				"franz-go  v1.22.3\n",
		},
		{
			name:    "no build information",
			version: "dev",
			want:    "edgelink dev\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stamp(t, tc.version, tc.commit, tc.date)
			var out bytes.Buffer
			writeVersion(&out, tc.bi)
			require.Equal(t, tc.want, out.String())
		})
	}
}
