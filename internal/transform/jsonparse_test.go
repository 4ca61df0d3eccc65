package transform

import (
	"encoding/json"
	"testing"

	"cel.dev/cel-go/common/types"

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
	lazy, lazyErr := lazyJSON(b)
	if wantErr != nil {
		require.Error(t, err, "encoding/json refuses %q (%v)", b, wantErr)
		require.Error(t, lazyErr, "encoding/json refuses %q (%v): so does the lazy object", b, wantErr)
		return
	}
	require.NoError(t, err, "encoding/json accepts %q", b)
	require.NoError(t, lazyErr, "encoding/json accepts %q", b)
	require.Equal(t, want, got, "%q", b)
	require.Equal(t, types.True, types.DefaultTypeAdapter.NativeToValue(want).Equal(lazy), "%q", b)
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

// fullVars resolves json by decoding the whole value (the reference the
// lazily decoded object must agree with).
type fullVars struct{ vars }

func (v *fullVars) ResolveName(name string) (any, bool) {
	if name == "json" {
		doc, err := parseJSON(v.r.Value)
		if err != nil {
			return types.NewErrFromString(err.Error()), true
		}
		return types.DefaultTypeAdapter.NativeToValue(doc), true
	}
	return v.vars.ResolveName(name)
}

// TestLazyJSONAsWholeDecode: expressions reading json give the same
// results, and fail alike, on a lazily decoded object as on the value
// decoded whole.
func TestLazyJSONAsWholeDecode(t *testing.T) {
	docs := append([]string{
		`{"temp":81.5,"machine":"m1","reading":{"raw":[1,2,3],"ok":true},"tags":["a","b"],"n":null}`,
		`{"temp":1,"temp":99}`, `{"t\u0065mp":42,"x":"\u00e9"}`, `{}`, `[1,2]`, `5`, `"s"`, `{"a":{"b":{"c":1}}}`,
		`{"a":1} `, ` {"a" : 1 , "b" : [ ] }`, `{"a":1,}`, `{"a":[1,2}`, `{"a":"x\q"}`, `{"a":tru}`,
	}, jsonSeeds...)
	exprs := []string{
		`json.temp > 80.0`, `json.machine == "m1"`, `has(json.temp)`, `has(json.reading.ok)`, `json.reading.raw[1]`,
		`size(json)`, `"temp" in json`, `json.tags.exists(t, t == "b")`, `json == {"temp": 81.5}`, `json.n == null`,
		`json.missing`, `json.a.b.c`, `json["temp"]`, `json.exists(k, k == "machine")`, `json`, `string(json.x)`, `json.a`,
		`has(json.nope)`, `json[1]`, `json.reading`, `size(json.reading)`,
	}
	for _, e := range exprs {
		p, err := Compile(e, nil)
		require.NoError(t, err, e)
		for _, d := range docs {
			r := &Record{Value: []byte(d)}
			want, _, wantErr := p.prg.Eval(&fullVars{vars{r: r}})
			got, _, gotErr := p.prg.Eval(&vars{r: r})
			if wantErr != nil || types.IsError(want) {
				require.True(t, gotErr != nil || types.IsError(got), "%s on %s: want an error (%v), got %v", e, d, wantErr, got)
				continue
			}
			require.NoError(t, gotErr, "%s on %s", e, d)
			require.Equal(t, types.True, want.Equal(got), "%s on %s: %v, want %v", e, d, got, want)
		}
	}
}
