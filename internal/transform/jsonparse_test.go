package transform

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

var jsonSeeds = []string{
	`{"machine":"m017","time":"2026-11-29T17:23:00Z","celsius":61.6}`,
	`{"a":[1,2.5,-3e2,0,0.0,-0,1E+2,true,false,null,"x"],"b":{"c":{}},"d":[]}`,
	`"esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00 \ud800 x"`,
	"\"bad utf8 \xff\xfe\"", `{"dup":1,"dup":2}`, ` [ 1 , 2 ] `, `1`, `-0.5e-3`, `"\u0000"`,
	``, `{`, `{"a"}`, `{"a":}`, `[1,]`, `01`, `1.`, `.5`, `-`, `+1`, `1e`, `tru`, `nul`, `"abc`, "\"a\nb\"", `{"a":1}x`,
	`"\x"`, `"\u12"`, `[1 2]`, `{"a" 1}`, `1e400`, `{,}`, `[`, `]`, `NaN`, `"\ud83d\u0041"`,
}

// TestParseValueAsEncodingJSON: the parser accepts what encoding/json
// accepts and gives the same values.
func TestParseValueAsEncodingJSON(t *testing.T) {
	for _, s := range jsonSeeds {
		checkParse(t, []byte(s))
	}
}

func FuzzParseValue(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkParse)
}

func checkParse(t *testing.T, b []byte) {
	var want any
	wantErr := json.Unmarshal(b, &want)
	got, err := parseValue(b)
	if wantErr != nil {
		require.Error(t, err, "encoding/json refuses %q (%v)", b, wantErr)
		return
	}
	require.NoError(t, err, "encoding/json accepts %q", b)
	require.Equal(t, want, got, "%q", b)
}

func BenchmarkParseValue(b *testing.B) {
	v := []byte(jsonSeeds[0])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseValue(v); err != nil {
			b.Fatal(err)
		}
	}
}
