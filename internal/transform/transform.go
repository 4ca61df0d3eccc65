// Package transform evaluates the CEL expressions of a link's transforms
// (links[].transforms) on the records of the source, before the WAN: a
// filter keeps a record when its expression is true; a projection rewrites
// a JSON value to the paths it keeps or drops.
//
// Expressions see one record through these variables:
//
//	key        bytes               the record's key (empty when none)
//	value      bytes               the record's value
//	json       dyn                 the value parsed as JSON (objects are maps)
//	headers    map(string, bytes)  the record's headers (the last of a repeated key)
//	topic      string              the source topic
//	partition  int                 the source partition
//	offset     int                 the source offset
//	timestamp  timestamp           the record's timestamp
//
// They are parsed and type-checked when the configuration loads (Compile);
// a problem is reported at its line and column within the expression. An
// evaluation is bounded by a cost limit, and a record whose value is not
// JSON where json is used is an error of that record (ErrNotJSON), never a
// panic and never a silent drop: the link's on_error decides.
package transform

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// CostLimit bounds the cost of one evaluation (CEL's cost units: about one
// per operation and per element of a list or string walked).
const CostLimit = 100_000

// ErrNotJSON is the error of a record whose value is not JSON where an
// expression or a projection needs it.
var ErrNotJSON = errors.New("value is not JSON")

// Record is what an expression sees of a record.
type Record struct {
	Key, Value []byte
	// Headers are the record's headers in order; a repeated key shows its
	// last value.
	Headers   []Header
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

var env = mustEnv()

func mustEnv() *cel.Env {
	e, err := cel.NewEnv(
		cel.Variable("key", cel.BytesType),
		cel.Variable("value", cel.BytesType),
		cel.Variable("json", cel.DynType),
		cel.Variable("headers", cel.MapType(cel.StringType, cel.BytesType)),
		cel.Variable("topic", cel.StringType),
		cel.Variable("partition", cel.IntType),
		cel.Variable("offset", cel.IntType),
		cel.Variable("timestamp", cel.TimestampType),
	)
	if err != nil {
		panic("transform: CEL environment: " + err.Error())
	}
	return e
}

// Variables lists the variables an expression can use.
var Variables = []string{"key", "value", "json", "headers", "topic", "partition", "offset", "timestamp"}

// CompileError is a problem with an expression: Line and Column are
// 1-based within the expression's text (0 when unknown).
type CompileError struct {
	Line, Column int
	Msg          string
	Hint         string
}

func (e *CompileError) Error() string {
	s := fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg)
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Program is a compiled expression.
type Program struct {
	src      string
	prg      cel.Program
	usesJSON bool
	result   *cel.Type
}

// Source returns the expression as written.
func (p *Program) Source() string { return p.src }

// UsesJSON reports whether the expression reads json (and so needs a JSON
// value).
func (p *Program) UsesJSON() bool { return p.usesJSON }

// Compile parses and type-checks expr, which must give want (cel.BoolType
// for a filter; nil for any type). Problems come back as *CompileError,
// the first one.
func Compile(expr string, want *cel.Type) (*Program, error) {
	return CompileFor(expr, want, "a filter must be true or false, e.g. json.temp > 80.0")
}

// CompileFor is Compile with the hint given when the expression's type is
// not want. A number (cel.DoubleType) may also be an int or a uint.
func CompileFor(expr string, want *cel.Type, hint string) (*Program, error) {
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, compileError(iss.Errors()[0])
	}
	out := ast.OutputType()
	number := want != nil && want.IsExactType(cel.DoubleType) && (out.IsExactType(cel.IntType) || out.IsExactType(cel.UintType))
	if want != nil && !number && !out.IsExactType(want) && !out.IsExactType(cel.DynType) {
		return nil, &CompileError{
			Line: 1, Column: 1,
			Msg:  fmt.Sprintf("the expression gives %s, not %s", out, want),
			Hint: hint,
		}
	}
	prg, err := env.Program(ast, cel.CostLimit(CostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, &CompileError{Line: 1, Column: 1, Msg: err.Error()}
	}
	return &Program{src: expr, prg: prg, usesJSON: referencesJSON(ast), result: ast.OutputType()}, nil
}

// referencesJSON reports whether a checked expression refers to json.
func referencesJSON(ast *cel.Ast) bool {
	for _, ref := range ast.NativeRep().ReferenceMap() {
		if ref.Name == "json" {
			return true
		}
	}
	return false
}

// compileError turns a CEL issue into a CompileError with a hint.
func compileError(e *cel.Error) *CompileError {
	ce := &CompileError{Line: e.Location.Line(), Column: e.Location.Column() + 1, Msg: e.Message}
	switch {
	case strings.Contains(e.Message, "undeclared reference"):
		ce.Hint = "the variables are " + strings.Join(Variables, ", ")
	case strings.Contains(e.Message, "found no matching overload"):
		ce.Hint = "check the operands' types: json values are dyn (numbers are doubles: write 80.0), key and value are bytes, string(value) converts"
	case strings.Contains(e.Message, "Syntax error"):
		ce.Hint = "CEL syntax: e.g. json.temp > 80.0 && topic.startsWith(\"sensors.\")"
	}
	return ce
}

// vars is what an expression sees of one record: a CEL activation that
// resolves each variable from the record when the expression asks for it,
// the headers' map built and the value parsed as JSON on first use, once
// for all the expressions evaluated with it.
type vars struct {
	r       *Record
	headers ref.Val
	json    ref.Val
}

var emptyBytes = types.Bytes([]byte{})

// ResolveName implements interpreter.Activation.
func (v *vars) ResolveName(name string) (any, bool) {
	r := v.r
	switch name {
	case "key":
		if r.Key == nil {
			return emptyBytes, true
		}
		return types.Bytes(r.Key), true
	case "value":
		if r.Value == nil {
			return emptyBytes, true
		}
		return types.Bytes(r.Value), true
	case "json":
		if v.json == nil {
			doc, err := lazyJSON(r.Value)
			if err != nil {
				doc = types.NewErrFromString(fmt.Errorf("%w: %w", ErrNotJSON, err).Error())
			}
			v.json = doc
		}
		return v.json, true
	case "headers":
		if v.headers == nil {
			h := make(map[string][]byte, len(r.Headers))
			for _, hd := range r.Headers {
				h[hd.Key] = hd.Value
			}
			v.headers = types.DefaultTypeAdapter.NativeToValue(h)
		}
		return v.headers, true
	case "topic":
		return types.String(r.Topic), true
	case "partition":
		return types.Int(r.Partition), true
	case "offset":
		return types.Int(r.Offset), true
	case "timestamp":
		return types.Timestamp{Time: r.Timestamp}, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (v *vars) Parent() interpreter.Activation { return nil }

// Eval evaluates the expression on r.
func (p *Program) Eval(r *Record) (ref.Val, error) {
	return p.evalIn(&vars{r: r})
}

// evalIn evaluates the expression with the variables act (activation's).
// The expressions evaluated on one record may share act: its value,
// parsed as JSON on first use, stays parsed in it.
func (p *Program) evalIn(act *vars) (ref.Val, error) {
	out, _, err := p.prg.Eval(act)
	if err != nil {
		if p.usesJSON && strings.Contains(err.Error(), ErrNotJSON.Error()) {
			return nil, fmt.Errorf("%w: %w", ErrNotJSON, err)
		}
		return nil, fmt.Errorf("evaluate %q: %w", p.src, err)
	}
	return out, nil
}

// Bool evaluates a filter on r.
func (p *Program) Bool(r *Record) (bool, error) {
	out, err := p.Eval(r)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("evaluate %q: gave %v (%s), not true or false", p.src, out.Value(), out.Type().TypeName())
	}
	return b, nil
}

// parseJSON parses a record value.
func parseJSON(b []byte) (any, error) {
	v, err := parseValue(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotJSON, err)
	}
	return v, nil
}
