package diode

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRedundancy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Redundancy
		str  string // String() of the result; "" is in
		err  string
	}{
		{in: "none", want: Redundancy{}},
		{in: "  NONE ", want: Redundancy{}, str: "none"},
		{in: "fec 16+4", want: Redundancy{Data: 16, Parity: 4}},
		{in: "fec 16+4, repeat 2s 20s", want: Redundancy{Data: 16, Parity: 4, Repeat: []time.Duration{2 * time.Second, 20 * time.Second}}},
		{in: "repeat 500ms", want: Redundancy{Repeat: []time.Duration{500 * time.Millisecond}}},
		{in: "repeat 1s 1m0s, fec 8+8, buffer 16MiB", want: Redundancy{Data: 8, Parity: 8, Repeat: []time.Duration{time.Second, time.Minute}, RepeatBuffer: 16 << 20}, str: "fec 8+8, repeat 1s 1m0s, buffer 16MiB"},
		{in: "fec 16+4, repeat 2s, buffer 64MiB", want: Redundancy{Data: 16, Parity: 4, Repeat: []time.Duration{2 * time.Second}, RepeatBuffer: 64 << 20}, str: "fec 16+4, repeat 2s"},
		{in: "fec none, repeat 3s", want: Redundancy{Repeat: []time.Duration{3 * time.Second}}, str: "repeat 3s"},
		{in: "fec 1+1", want: Redundancy{Data: 1, Parity: 1}},
		{in: "fec 200+56", want: Redundancy{Data: 200, Parity: 56}},
		{in: "", err: "redundancy is empty"},
		{in: "fec", err: "fec takes one argument"},
		{in: "fec 16", err: "want DATA+PARITY"},
		{in: "fec a+b", err: "want DATA+PARITY"},
		{in: "fec 0+4", err: "at least 1 data datagram"},
		{in: "fec 16+0", err: `parity must be at least 1; write "fec none"`},
		{in: "fec 200+57", err: "at most 256 datagrams in a group"},
		{in: "fec -1+2", err: "at least 1 data datagram"},
		{in: "repeat", err: "one or more delays"},
		{in: "repeat 2", err: "repeat 2: not a duration"},
		{in: "repeat 20s 2s", err: "delays must increase"},
		{in: "repeat 2s 2s", err: "delays must increase"},
		{in: "repeat 0s", err: "a delay must be positive"},
		{in: "repeat 2h", err: "at most 1h0m0s"},
		{in: "repeat 1s 2s 3s 4s 5s 6s 7s 8s 9s", err: "at most 8 delays"},
		{in: "fec 16+4, fec 8+2", err: "fec given twice"},
		{in: "fec 16+4,", err: "empty clause"},
		{in: "fec 16+4; repeat 2s", err: "fec takes one argument"},
		{in: "parity 4", err: `unknown clause "parity"`},
		{in: "none, fec 16+4", err: "none stands alone"},
		{in: "repeat 2s, buffer 1KiB", err: "at least 64KiB"},
		{in: "repeat 2s, buffer lots", err: "want a size such as 64MiB"},
		{in: "fec 16+4, buffer 64MiB", err: "buffer without repeat"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRedundancy(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			str := tc.str
			if str == "" {
				str = tc.in
			}
			require.Equal(t, str, got.String())
			again, err := ParseRedundancy(got.String())
			require.NoError(t, err, "String() parses back")
			if got.RepeatBuffer == DefaultRepeatBuffer {
				got.RepeatBuffer = 0 // the default is not rendered
			}
			require.Equal(t, got, again)
		})
	}
}

func TestDefaultRedundancy(t *testing.T) {
	r := DefaultRedundancy()
	require.NoError(t, r.Validate())
	require.Equal(t, "fec 16+4", r.String())
}

func TestRepairWindow(t *testing.T) {
	require.Equal(t, 2*time.Second, RedundancyInfo{}.RepairWindow())
	require.Equal(t, 27*time.Second, RedundancyInfo{Repeat: []time.Duration{2 * time.Second, 20 * time.Second}}.RepairWindow())
	require.Equal(t, 30*time.Second, RedundancyInfo{Repeat: []time.Duration{2 * time.Second, 20 * time.Second}, Lag: 3 * time.Second}.RepairWindow())
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	k, err := GenerateKey()
	require.NoError(t, err)
	k2, err := GenerateKey()
	require.NoError(t, err)
	require.NotEqual(t, k, k2)

	path := filepath.Join(dir, "diode.key")
	require.NoError(t, WriteKeyFile(path, k))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	text, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	require.Len(t, lines, 2)
	require.True(t, strings.HasPrefix(lines[0], "# "), "a comment line first")
	require.Len(t, lines[1], 64)

	got, err := LoadKeyFile(path)
	require.NoError(t, err)
	require.Equal(t, k, got)

	err = WriteKeyFile(path, k2)
	require.ErrorContains(t, err, "exists; a key file is never overwritten")
	got, err = LoadKeyFile(path)
	require.NoError(t, err)
	require.Equal(t, k, got, "the file is unchanged")

	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), mode))
		require.NoError(t, os.Chmod(p, mode)) // past the umask
		return p
	}
	hexKey := lines[1]
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		err           string
	}{
		{"group-readable", hexKey + "\n", 0o640, "readable by others than its owner (mode 0640); run chmod 600"},
		{"world-readable", hexKey + "\n", 0o604, "mode 0604"},
		{"short", hexKey[:62] + "\n", 0o600, "holds a 31-byte key, want 32 bytes (64 hex digits)"},
		{"long", hexKey + "00\n", 0o600, "holds a 33-byte key"},
		{"not hex", strings.Repeat("zz", 32) + "\n", 0o600, "is not hex"},
		{"empty", "# only a comment\n\n", 0o600, "holds no key"},
		{"two keys", hexKey + "\n" + hexKey + "\n", 0o600, "more than one key line"},
		{"zero", strings.Repeat("00", 32) + "\n", 0o600, "all-zero key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadKeyFile(write(tc.name, tc.content, tc.mode))
			require.ErrorContains(t, err, tc.err)
		})
	}
	t.Run("comments and blanks", func(t *testing.T) {
		got, err := LoadKeyFile(write("commented", "\n# a\n  "+hexKey+"  \n# b\n", 0o400))
		require.NoError(t, err)
		require.Equal(t, k, got)
	})
	_, err = LoadKeyFile(filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
