package transform

import (
	"bytes"
	"reflect"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// lazyJSON is what the json variable resolves to: for a value that is a
// JSON object, an object whose members are decoded only when an
// expression reads them (json.temp reads one field of the reading, not
// all of them); for any other JSON, the value decoded whole. The whole
// document is checked when it is resolved, so a value that is not JSON is
// an error whatever the expression reads, as with a whole decode.
func lazyJSON(b []byte) (ref.Val, error) {
	p := jsonParser{b: b}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '{' {
		o := &lazyObject{}
		o.fields = o.small[:0]
		if err := p.index(o); err != nil {
			return nil, err
		}
		p.space()
		if p.i != len(p.b) {
			return nil, p.fail("data after the value")
		}
		return o, nil
	}
	v, err := parseValue(b)
	if err != nil {
		return nil, err
	}
	return types.DefaultTypeAdapter.NativeToValue(v), nil
}

// member is one member of a JSON object, as raw bytes: the key between
// its quotes, and the value.
type member struct {
	key, val []byte
	escaped  bool // the key has escapes (or invalid UTF-8): compare it decoded
}

// lazyObject is a JSON object whose members decode when read. It
// implements CEL's map, as the decoded map[string]any would: reading a
// member decodes its value (an object again lazily), anything else
// (size, iteration, equality, conversion) decodes the whole object once.
type lazyObject struct {
	fields []member
	small  [4]member
	full   traits.Mapper
}

// index reads an object at p.b[p.i], checking it, and records its
// members; nested values are checked, not decoded.
func (p *jsonParser) index(o *lazyObject) error {
	p.i++ // {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return p.fail("expected a string key")
		}
		start := p.i
		escaped, err := p.skipString()
		if err != nil {
			return err
		}
		key := p.b[start+1 : p.i-1]
		if !escaped && !utf8.Valid(key) {
			escaped = true // decoded, invalid UTF-8 becomes U+FFFD
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return p.fail("expected ':'")
		}
		p.i++
		p.space()
		vs := p.i
		if err := p.skip(1); err != nil {
			return err
		}
		o.fields = append(o.fields, member{key: key, val: p.b[vs:p.i], escaped: escaped})
		p.space()
		if p.i >= len(p.b) {
			return p.fail("unexpected end in an object")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.fail("expected ',' or '}'")
		}
	}
}

// skip checks the value at p.b[p.i] and moves past it without decoding
// it (strings are checked as str decodes them).
func (p *jsonParser) skip(depth int) error {
	if p.i >= len(p.b) {
		return p.fail("unexpected end")
	}
	switch c := p.b[p.i]; {
	case c == '{' || c == '[':
		if depth > maxDepth {
			return p.fail("nested too deeply")
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.i++
		p.space()
		if p.i < len(p.b) && p.b[p.i] == end {
			p.i++
			return nil
		}
		for {
			p.space()
			if c == '{' {
				if p.i >= len(p.b) || p.b[p.i] != '"' {
					return p.fail("expected a string key")
				}
				if _, err := p.skipString(); err != nil {
					return err
				}
				p.space()
				if p.i >= len(p.b) || p.b[p.i] != ':' {
					return p.fail("expected ':'")
				}
				p.i++
				p.space()
			}
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			p.space()
			if p.i >= len(p.b) {
				return p.fail("unexpected end")
			}
			switch p.b[p.i] {
			case ',':
				p.i++
			case end:
				p.i++
				return nil
			default:
				return p.fail("expected ',' or the end of a container")
			}
		}
	case c == '"':
		_, err := p.skipString()
		return err
	case c == '-' || c >= '0' && c <= '9':
		return p.skipNumber()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	}
	return p.fail("unexpected character")
}

// skipString checks the string at p.b[p.i] and moves past it, reporting
// whether it has escapes.
func (p *jsonParser) skipString() (escaped bool, err error) {
	start := p.i
	p.i++
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return false, nil
		case c == '\\' || c < 0x20:
			p.i = start
			_, err := p.str() // the slow path checks escapes
			return true, err
		}
		p.i++
	}
	return false, p.fail("unterminated string")
}

// member finds key's member (the last one, as a decode keeps).
func (o *lazyObject) member(key string) (member, bool) {
	for i := len(o.fields) - 1; i >= 0; i-- {
		f := o.fields[i]
		if !f.escaped {
			if string(f.key) == key {
				return f, true
			}
			continue
		}
		q := jsonParser{b: append(append([]byte{'"'}, f.key...), '"')}
		if k, err := q.str(); err == nil && k == key {
			return f, true
		}
	}
	return member{}, false
}

// decode decodes a member's value (an object lazily).
func decodeMember(f member) ref.Val {
	if len(f.val) > 0 && f.val[0] == '{' {
		if v, err := lazyJSON(f.val); err == nil {
			return v
		}
	}
	v, err := parseValue(bytes.TrimSpace(f.val))
	if err != nil { // checked when indexed: cannot happen
		return types.NewErrFromString(err.Error())
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}

// Find implements traits.Mapper.
func (o *lazyObject) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return o.decoded().Find(key)
	}
	f, found := o.member(string(k))
	if !found {
		return nil, false
	}
	return decodeMember(f), true
}

// Get implements traits.Indexer.
func (o *lazyObject) Get(key ref.Val) ref.Val {
	if v, found := o.Find(key); found {
		return v
	}
	return o.decoded().Get(key)
}

// Contains implements traits.Container.
func (o *lazyObject) Contains(key ref.Val) ref.Val {
	if k, ok := key.(types.String); ok {
		_, found := o.member(string(k))
		return types.Bool(found)
	}
	return o.decoded().Contains(key)
}

// decoded is the object decoded whole, once.
func (o *lazyObject) decoded() traits.Mapper {
	if o.full == nil {
		m := make(map[string]any, len(o.fields))
		for _, f := range o.fields {
			k := string(f.key)
			if f.escaped {
				q := jsonParser{b: append(append([]byte{'"'}, f.key...), '"')}
				k, _ = q.str()
			}
			v, _ := parseValue(bytes.TrimSpace(f.val)) // checked when indexed
			m[k] = v
		}
		o.full = types.DefaultTypeAdapter.NativeToValue(m).(traits.Mapper)
	}
	return o.full
}

// The rest of CEL's map, on the object decoded whole.

func (o *lazyObject) Iterator() traits.Iterator { return o.decoded().Iterator() }
func (o *lazyObject) Size() ref.Val             { return o.decoded().Size() }
func (o *lazyObject) ConvertToNative(t reflect.Type) (any, error) {
	return o.decoded().ConvertToNative(t)
}
func (o *lazyObject) ConvertToType(t ref.Type) ref.Val { return o.decoded().ConvertToType(t) }
func (o *lazyObject) Equal(other ref.Val) ref.Val      { return o.decoded().Equal(other) }
func (o *lazyObject) Type() ref.Type                   { return types.MapType }
func (o *lazyObject) Value() any                       { return o.decoded().Value() }
