package visible_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/visible"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     string // a part of the error; "" for none
	}{
		{"plain text", "Laptop (work)", ""},
		{"letters of other scripts", "Ноутбук 工作 لابتوب", ""},
		{"an emoji", "🔑 key", ""},
		{"right-to-left override", "evil\u202Egpj.exe", "U+202E (an invisible formatting character"},
		{"right-to-left isolate", "a\u2067b", "U+2067 (an invisible formatting"},
		{"zero-width space", "ad\u200Bmin", "U+200B"},
		{"byte order mark", "\uFEFFname", "U+FEFF"},
		{"a tag character beyond the BMP", "ok\U000E0041", "U+E0041"},
		{"a C1 control (CSI)", "a\u009B31m", "U+009B (a control character)"},
		{"escape", "a\x1b[2J", "U+001B (a control character)"},
		{"tab", "a\tb", "U+0009"},
		{"new line", "a\nb", "U+000A"},
		{"line separator", "a\u2028b", "U+2028 (a line or paragraph separator)"},
		{"paragraph separator", "a\u2029b", "U+2029"},
		{"not UTF-8", "a\xffb", "must be valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := visible.Check("a passkey name", tt.in)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v, want nil", tt.in, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "a passkey name must") {
				t.Fatalf("Check(%q) = %v, want an error about a passkey name with %q", tt.in, err, tt.want)
			}
			if strings.Contains(err.Error(), tt.in) {
				t.Fatalf("the error %q quotes the input", err)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"plain text is unchanged", "Alice Liddell", "Alice Liddell"},
		{"other scripts are unchanged", "Ноутбук 工作", "Ноутбук 工作"},
		{"right-to-left override", "evil\u202Egpj.exe", "evil<U+202E>gpj.exe"},
		{"isolates", "\u2066x\u2069", "<U+2066>x<U+2069>"},
		{"beyond the BMP", "a\U000E0041", "a<U+E0041>"},
		{"controls, a tab among them", "a\tb\x1b[2J\u009B", "a<U+0009>b<U+001B>[2J<U+009B>"},
		{"line separator", "a\u2028b", "a<U+2028>b"},
		{"bytes that are not UTF-8", "a\xff\xfeb", "a<0xFF><0xFE>b"},
	}
	for _, tt := range tests {
		if got := visible.Escape(tt.in); got != tt.want {
			t.Errorf("%s: Escape(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestEscapeJSON(t *testing.T) {
	t.Parallel()
	in := map[string]string{"name": "evil\u202Egpj\U000E0041\u0085\u2028x\u00e9"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	got := string(visible.EscapeJSON(b))
	want := `{"name":"evil\u202egpj\udb40\udc41\u0085\u2028xé"}` + "\n"
	if got != want {
		t.Fatalf("EscapeJSON = %s, want %s", got, want)
	}
	var back map[string]string
	if err := json.Unmarshal([]byte(got), &back); err != nil || back["name"] != in["name"] {
		t.Fatalf("the escaped JSON decodes to %q, %v; want the original value", back["name"], err)
	}
	plain := []byte(`{"name":"Alice"}` + "\n")
	if got := visible.EscapeJSON(plain); string(got) != string(plain) {
		t.Fatalf("clean JSON changed: %s", got)
	}
}
