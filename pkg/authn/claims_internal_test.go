package authn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// decodeObjectSeeds are objects and non-objects whose decoding goes each
// way: repeated names (exactly, and differing in case), colons, quotes and
// braces inside strings and nested values, trailing data, and values
// that are not objects.
var decodeObjectSeeds = []string{
	`{"iss":"https://issuer.example","sub":"alice","aud":["a","b"],"exp":4102444800,"scope":"openid profile"}`,
	`{"a":1,"a":2}`,
	`{"sub":"x","SUB":"y"}`,
	`{"Sub":"x","sUb":"y"}`,
	`{"é":1,"É":2}`,
	`{"a":"x:y","b":"\":\"","c":{"d":1,"d":2},"e":[{"f":":"}]}`,
	`{"a\"b":1,"a\"b":2}`,
	`{"a":"\\","b":1}`,
	` {"a":1} `,
	`{"a":1} x`,
	`{"a":1}{"b":2}`,
	`null`, `[]`, `"a"`, `1`, ``, `{`, `{"a"}`, `{"a":1,}`,
	"{\"a\xff\":1,\"a\xfe\":2}",
	`{"a":"}","b":[1,"]",{"c":"\\\""}],"c":true,"d":null,"e":-1.5e3}`,
	`{"a":1,"\u0061":2}`,
	"{\n\t\"a\" :\r 1 ,\"b\":{ } , \"c\":[ ]\n}",
}

// TestDecodeObject: the one-pass decoding and the token-by-token reading
// agree on every seed, and the faults are refused.
func TestDecodeObject(t *testing.T) {
	t.Parallel()
	for _, seed := range decodeObjectSeeds {
		compareDecodings(t, []byte(seed))
	}
	// These are split in one pass, not left to the token-by-token reading.
	for _, plain := range []string{decodeObjectSeeds[0], decodeObjectSeeds[5], decodeObjectSeeds[7], decodeObjectSeeds[8],
		`{"a":"}","b":[1,"]",{"c":"\\\""}],"c":true,"d":null,"e":-1.5e3}`, "{\n\t\"a\" :\r 1 ,\"b\":{ } , \"c\":[ ]\n}"} {
		got, ok := splitObject([]byte(plain))
		want, err := decodeObjectByTokens([]byte(plain))
		if !ok || err != nil || len(got) != len(want) {
			t.Errorf("%s: split %v into %d members, want %d (%v)", plain, ok, len(got), len(want), err)
		}
		for name, v := range want {
			if !bytes.Equal(got[name], v) {
				t.Errorf("%s: member %q split as %s, want %s", plain, name, got[name], v)
			}
		}
	}
	members := make([]string, maxClaims+1)
	for i := range members {
		members[i] = fmt.Sprintf(`"c%d":1`, i)
	}
	many := "{" + strings.Join(members, ",") + "}"
	if _, err := decodeObject([]byte(many)); err == nil {
		t.Errorf("an object of %d members was accepted", maxClaims+1)
	}
	for _, refused := range []string{`{"a":1,"a":2}`, `{"sub":"x","SUB":"y"}`, `{"a\"b":1,"a\"b":2}`, `{"a":1} x`, `null`, `[]`} {
		if _, err := decodeObject([]byte(refused)); err == nil {
			t.Errorf("%s was accepted", refused)
		}
	}
}

// FuzzDecodeObject: decodeObject accepts exactly what the token-by-token
// reading (the oracle) accepts, with the same members.
func FuzzDecodeObject(f *testing.F) { fuzzFrom(f, decodeObjectSeeds, compareDecodings) }

// fuzzFrom fuzzes compare from the seeds.
func fuzzFrom(f *testing.F, seeds []string, compare func(*testing.T, []byte)) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(compare)
}

func compareDecodings(t *testing.T, data []byte) {
	t.Helper()
	got, gotErr := decodeObject(data)
	want, wantErr := decodeObjectByTokens(data)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%q: decodeObject error %v, token by token %v", data, gotErr, wantErr)
	}
	if len(got) != len(want) {
		t.Fatalf("%q: %d members, token by token %d", data, len(got), len(want))
	}
	for name, v := range want {
		if !bytes.Equal(got[name], v) {
			t.Fatalf("%q: member %q is %s, token by token %s", data, name, got[name], v)
		}
	}
}

// jsonScalarSeeds are values the claim readers meet: plain and escaped
// strings, non-ASCII, integers, fractions, exponents, leading zeros,
// signs, and values of other types.
var jsonScalarSeeds = []string{
	`"alice"`, `"a\"b"`, `"a\\b"`, `"\u00e9"`, `"é"`, "\"a\tb\"", `"a\u0000"`, `""`, `"`, `"a`, `a"`,
	`1700000000`, `0`, `01`, `-1`, `1.5`, `1e3`, `123456789012345`, `1234567890123456`, `99999999999999999999`,
	`null`, `true`, `[]`, `{}`, ` 1`, `1 `,
}

// TestJSONScalars: the claim readers' shortcuts agree with json.Unmarshal
// on every seed.
func TestJSONScalars(t *testing.T) {
	t.Parallel()
	for _, seed := range jsonScalarSeeds {
		compareScalars(t, []byte(seed))
	}
}

// FuzzJSONScalars: jsonString and jsonNumber read what json.Unmarshal (the
// oracle) reads, and refuse what it refuses.
func FuzzJSONScalars(f *testing.F) { fuzzFrom(f, jsonScalarSeeds, compareScalars) }

func compareScalars(t *testing.T, raw []byte) {
	t.Helper()
	var ws string
	wsErr := json.Unmarshal(raw, &ws)
	if len(raw) == 0 || raw[0] != '"' {
		ws, wsErr = "", errors.New("not a string") // jsonString's callers want a string, not null
	}
	gs, gsOK := jsonString(raw)
	if gsOK != (wsErr == nil) || gs != ws {
		t.Fatalf("%q: jsonString %q %v, json.Unmarshal %q %v", raw, gs, gsOK, ws, wsErr)
	}
	var wn float64
	wnErr := json.Unmarshal(raw, &wn)
	if string(raw) == "null" {
		wn, wnErr = 0, errors.New("null") // timeClaim refuses null before asking
	}
	gn, gnOK := jsonNumber(raw)
	if string(raw) == "null" {
		gnOK = false
	}
	if gnOK != (wnErr == nil) || gn != wn {
		t.Fatalf("%q: jsonNumber %v %v, json.Unmarshal %v %v", raw, gn, gnOK, wn, wnErr)
	}
}
