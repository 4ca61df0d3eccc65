package transform_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/cel"
	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/transform"
)

func rec(value string) *transform.Record {
	return &transform.Record{
		Key: []byte("m-7"), Value: []byte(value), Topic: "sensors.temp", Partition: 2, Offset: 41,
		Timestamp: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC),
		Headers:   []transform.Header{{Key: "unit", Value: []byte("C")}},
	}
}

func TestFilter(t *testing.T) {
	for _, tc := range []struct {
		expr, value string
		want        bool
	}{
		{`json.temp > 80.0`, `{"temp": 81.5}`, true},
		{`json.temp > 80.0`, `{"temp": 20}`, false},
		{`topic.startsWith("sensors.") && partition == 2 && offset == 41`, `x`, true},
		{`string(key) == "m-7" && headers["unit"] == b"C"`, `x`, true},
		{`timestamp > timestamp("2026-01-01T00:00:00Z")`, `x`, true},
		{`size(value) < 3`, `ab`, true},
		{`has(json.alarm) && json.alarm`, `{"alarm": true}`, true},
		{`has(json.alarm) && json.alarm`, `{"temp": 1}`, false},
	} {
		p, err := transform.Compile(tc.expr, cel.BoolType)
		require.NoError(t, err, tc.expr)
		got, err := p.Bool(rec(tc.value))
		require.NoError(t, err, tc.expr)
		require.Equal(t, tc.want, got, tc.expr)
	}
}

// TestFilterErrors: a value that is not JSON where json is used, and a
// runaway expression, are errors of the record, never a panic.
func TestFilterErrors(t *testing.T) {
	p, err := transform.Compile(`json.temp > 80.0`, cel.BoolType)
	require.NoError(t, err)
	require.True(t, p.UsesJSON())
	_, err = p.Bool(rec(`not json`))
	require.ErrorIs(t, err, transform.ErrNotJSON)
	_, err = p.Bool(rec(`{"temp": "hot"}`))
	require.Error(t, err)
	require.NotErrorIs(t, err, transform.ErrNotJSON)

	p, err = transform.Compile(`size(value) > 0`, cel.BoolType)
	require.NoError(t, err)
	require.False(t, p.UsesJSON())

	long := `[` + strings.Repeat("1,", 40000) + `1]`
	p, err = transform.Compile(`json.all(x, json.all(y, x == y))`, cel.BoolType)
	require.NoError(t, err)
	_, err = p.Bool(rec(long))
	require.Error(t, err)
	require.Contains(t, err.Error(), "cost")
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		expr         string
		line, column int
		msg, hint    string
	}{
		{`json.temp >`, 1, 12, "Syntax error", "CEL syntax"},
		{`jsn.temp > 1.0`, 1, 1, "undeclared reference to 'jsn'", "the variables are key, value, json"},
		{`value > 3`, 1, 7, "found no matching overload for '_>_'", "check the operands' types"},
		{`json.temp`, 0, 0, "", ""},
		{`topic`, 1, 1, "the expression gives string, not bool", "a filter must be true or false"},
		{"json.a > 1.0 &&\n  bogus", 2, 3, "undeclared reference to 'bogus'", ""},
	} {
		_, err := transform.Compile(tc.expr, cel.BoolType)
		if tc.msg == "" {
			require.NoError(t, err, tc.expr)
			continue
		}
		var ce *transform.CompileError
		require.True(t, errors.As(err, &ce), "%s: %v", tc.expr, err)
		require.Equal(t, tc.line, ce.Line, "%s: %v", tc.expr, ce)
		require.Equal(t, tc.column, ce.Column, "%s: %v", tc.expr, ce)
		require.Contains(t, ce.Msg, tc.msg)
		require.Contains(t, ce.Hint, tc.hint)
	}
}

func TestProjection(t *testing.T) {
	keep, err := transform.NewProjection([]string{"id", "reading.temp", "missing.path"}, false)
	require.NoError(t, err)
	out, err := keep.Apply([]byte(`{"id": 7, "debug": "x", "reading": {"temp": 21.5, "raw": [1,2,3]}}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"id": 7, "reading": {"temp": 21.5}}`, string(out))

	drop, err := transform.NewProjection([]string{"debug", "reading.raw"}, true)
	require.NoError(t, err)
	out, err = drop.Apply([]byte(`{"id": 7, "debug": "x", "reading": {"temp": 21.5, "raw": [1,2,3]}}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"id": 7, "reading": {"temp": 21.5}}`, string(out))

	_, err = keep.Apply([]byte(`[1, 2]`))
	require.ErrorIs(t, err, transform.ErrNotJSON)
	_, err = keep.Apply([]byte(`oops`))
	require.ErrorIs(t, err, transform.ErrNotJSON)

	_, err = transform.NewProjection([]string{"ok", "bad..path"}, false)
	var pe *transform.PathError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 1, pe.Index)
}
