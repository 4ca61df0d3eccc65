package transform

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// sharedVars returns the variables of r for several expressions
// evaluated on it, which share its value parsed as JSON.
func sharedVars(r *Record) *vars { return &vars{r: r} }

// evalKey evaluates a stateful transform's key expression with a record's
// variables act (activation's) and returns its key text (keyText).
func evalKey(p *Program, act *vars) (string, error) {
	v, err := p.evalIn(act)
	if err != nil {
		return "", err
	}
	k, err := keyText(v)
	if err != nil {
		return "", fmt.Errorf("evaluate %q: %w", p.src, err)
	}
	return k, nil
}

// keyText returns the text of a key expression's value, by which the
// stateful transforms tell keys apart and which an aggregate's windows
// carry as their record key: a string or bytes as is, an int or a uint in
// decimal, a double in strconv's shortest 'g' form (7, 21.5, 1e+21), a bool
// as true or false, null as the empty text, a timestamp or a duration as
// CEL's string() writes it, and a list or a map as its JSON encoding with
// the map keys sorted (so equal values always give the same text).
func keyText(v ref.Val) (string, error) {
	switch v := v.(type) {
	case types.String:
		return string(v), nil
	case types.Bytes:
		return string(v), nil
	case types.Int:
		return strconv.FormatInt(int64(v), 10), nil
	case types.Uint:
		return strconv.FormatUint(uint64(v), 10), nil
	case types.Double:
		// JSON numbers are doubles: a whole number (a device id) reads as
		// written, 1234567 rather than 1.234567e+06.
		if f := float64(v); f == math.Trunc(f) && math.Abs(f) < 1e21 {
			return strconv.FormatFloat(f, 'f', -1, 64), nil
		}
		return strconv.FormatFloat(float64(v), 'g', -1, 64), nil
	case types.Bool:
		return strconv.FormatBool(bool(v)), nil
	case types.Null:
		return "", nil
	case types.Timestamp, types.Duration:
		return celString(v)
	}
	j, err := jsonValue(v)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(j)
	if err != nil {
		return "", fmt.Errorf("the key has no JSON encoding: %w", err)
	}
	return string(b), nil
}

// jsonValue converts a CEL value to what encoding/json encodes as its JSON
// (a map becomes a map[string]any, which encoding/json writes with its
// keys sorted; a map key becomes its key text).
func jsonValue(v ref.Val) (any, error) {
	switch v := v.(type) {
	case types.String:
		return string(v), nil
	case types.Bytes:
		return []byte(v), nil
	case types.Int:
		return int64(v), nil
	case types.Uint:
		return uint64(v), nil
	case types.Double:
		return float64(v), nil
	case types.Bool:
		return bool(v), nil
	case types.Null:
		return nil, nil
	case types.Timestamp, types.Duration:
		return celString(v)
	case traits.Mapper:
		out := make(map[string]any)
		for it := v.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			kt, err := keyText(k)
			if err != nil {
				return nil, err
			}
			if _, dup := out[kt]; dup {
				// Two keys of different types with the same text (1 and
				// "1"): which one wins would depend on the map's order.
				return nil, fmt.Errorf("the key has two map keys written %q", kt)
			}
			e, err := jsonValue(v.Get(k))
			if err != nil {
				return nil, err
			}
			out[kt] = e
		}
		return out, nil
	case traits.Lister:
		n, ok := v.Size().(types.Int)
		if !ok {
			return nil, fmt.Errorf("the key is a list of unknown size")
		}
		out := make([]any, n)
		for i := range out {
			e, err := jsonValue(v.Get(types.Int(i)))
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	}
	return nil, fmt.Errorf("the key is %s, which has no key text", v.Type().TypeName())
}

// celString converts v as CEL's string() does.
func celString(v ref.Val) (string, error) {
	s, ok := v.ConvertToType(types.StringType).(types.String)
	if !ok {
		return "", fmt.Errorf("the key is %s, which has no key text", v.Type().TypeName())
	}
	return string(s), nil
}

// evalNumber evaluates a value expression of an aggregate with a record's
// variables act; it must give a finite int, uint or double.
func evalNumber(p *Program, act *vars) (float64, error) {
	v, err := p.evalIn(act)
	if err != nil {
		return 0, err
	}
	var f float64
	switch n := v.(type) {
	case types.Double:
		f = float64(n)
	case types.Int:
		f = float64(n)
	case types.Uint:
		f = float64(n)
	default:
		return 0, fmt.Errorf("evaluate %q: gave %v (%s), not a number", p.src, v.Value(), v.Type().TypeName())
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("evaluate %q: gave %v, not a finite number", p.src, f)
	}
	return f, nil
}

// appendJSONFloat appends f as encoding/json encodes a float64 (21, 21.5,
// 1e-7, 1e+21); a non-finite f, which JSON cannot represent, as null.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Write e-07 as e-7, as encoding/json does.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
