package mdreport

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReplace(t *testing.T) {
	s := Section{Begin: "<!-- b:begin -->", End: "<!-- b:end -->"}
	section := s.Begin + "\nnew\n" + s.End + "\n"
	got, err := s.Replace("# B\n\n## other\n", section)
	require.NoError(t, err)
	require.Equal(t, "# B\n\n## other\n\n"+section, got, "appended after a blank line")

	got, err = s.Replace("# B\n\n"+s.Begin+"\nold\n"+s.End+"\n\n### notes\n", section)
	require.NoError(t, err)
	require.Equal(t, "# B\n\n"+section+"\n### notes\n", got, "what follows the section stays")

	_, err = s.Replace(s.Begin+"\nold\n", section)
	require.Error(t, err)
}

func TestWrite(t *testing.T) {
	s := Section{Begin: "<!-- b:begin -->", End: "<!-- b:end -->"}
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	require.NoError(t, s.Write(path, s.Begin+"\none\n"+s.End+"\n"))
	require.NoError(t, s.Write(path, s.Begin+"\ntwo\n"+s.End+"\n"))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "\n\n"+s.Begin+"\ntwo\n"+s.End+"\n", string(got))
}

func TestFormatting(t *testing.T) {
	require.Equal(t, "1,000,000", Count(1_000_000))
	require.Equal(t, "999", Count(999))
	require.Equal(t, "0", Count(0))
	require.Equal(t, "-12,345", Count(-12345))
	require.Equal(t, "aa bb\ncc\nddddddd", Wrap("aa bb cc ddddddd", 5))
}
