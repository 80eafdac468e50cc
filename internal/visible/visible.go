// Package visible is the one rule for text that nsauth shows to people
// but that others chose: names (of passkeys, users, federation policies)
// and whatever came from the network and is printed on a terminal (the
// audit trail's usernames, client ids, targets).
//
// A character that is not seen as itself can make an administrator read
// something other than what is stored: a control character moves the
// cursor or retitles the window, and a format character (Unicode category
// Cf) such as U+202E RIGHT-TO-LEFT OVERRIDE reorders the text after it
// ("Trojan Source"), while zero-width and tag characters hide text
// altogether. Line and paragraph separators break a row in two. Such
// characters are refused where a name is chosen ([Check]), and escaped
// wherever text is printed ([Escape], [EscapeJSON]), since data stored
// before the rule, or typed by anyone at a login page, may hold them.
package visible

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Hidden reports whether r is not shown as itself: a control character
// (Unicode category Cc), a format character (Cf) or a line or paragraph
// separator (Zl, Zp).
func Hidden(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}

// Check returns an error, worded to follow what (such as "a passkey
// name"), when s is not valid UTF-8 or holds a [Hidden] character. The
// error names the character by its code point, never quotes s.
func Check(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s must be valid UTF-8 text", what)
	}
	i := strings.IndexFunc(s, Hidden)
	if i < 0 {
		return nil
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	kind := "a control character"
	if unicode.Is(unicode.Cf, r) {
		kind = "an invisible formatting character, which can reorder or hide the text around it"
	} else if !unicode.IsControl(r) {
		kind = "a line or paragraph separator"
	}
	return fmt.Errorf("%s must not contain %U (%s)", what, r, kind)
}

// Escape returns s with every [Hidden] character written as <U+XXXX> and
// every byte that is not UTF-8 as <0xXX>, so that a terminal shows what is
// there. Text without either is returned unchanged.
func Escape(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, Hidden) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "<0x%02X>", s[i])
		case Hidden(r):
			fmt.Fprintf(&b, "<%U>", r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// EscapeJSON rewrites the output of encoding/json so that no [Hidden]
// character is left raw in it: each becomes a \u escape (a surrogate pair
// beyond U+FFFF), which decodes to the same value. encoding/json already
// escapes the ASCII controls inside strings; the new lines that separate
// JSON lines are kept.
func EscapeJSON(b []byte) []byte {
	clean := true
	for _, r := range string(b) {
		if r >= 0x7f && Hidden(r) {
			clean = false
			break
		}
	}
	if clean {
		return b
	}
	out := make([]byte, 0, len(b)+32)
	for _, r := range string(b) {
		if r < 0x7f || !Hidden(r) {
			out = utf8.AppendRune(out, r)
			continue
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
	}
	return out
}
