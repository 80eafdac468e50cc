package secondfactor

import (
	"fmt"
	"html/template"
	"net/url"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// QRSVG draws content as a QR code in an inline SVG element, with its
// quiet zone, size pixels wide. Inline SVG is part of the page, not a
// resource it loads, so the login pages' CSP (default-src 'none',
// img-src 'self') needs no data: or blob: source for it.
func QRSVG(content string, size int) (template.HTML, error) {
	q, err := qrcode.New(content, qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("drawing a QR code: %w", err)
	}
	bm := q.Bitmap()
	n := len(bm)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="QR code of the authenticator link" width="%d" height="%d" viewBox="0 0 %d %d" shape-rendering="crispEdges">`, size, size, n, n)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n)
	for y, row := range bm {
		for x, dark := range row {
			if dark {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x, y)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	// Only numbers and fixed text went into it: nothing to escape.
	return template.HTML(b.String()), nil //nolint:gosec // built above from numbers only
}

// QRTerminal draws content as a QR code with Unicode half blocks, two rows
// of modules per line, quiet zone included. It draws the light modules
// (blocks in the terminal's text colour) and leaves the dark ones blank
// (the background): on the usual light-on-dark terminal the code reads
// dark on light, as scanners expect.
func QRTerminal(content string) (string, error) {
	q, err := qrcode.New(content, qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("drawing a QR code: %w", err)
	}
	bm := q.Bitmap()
	var b strings.Builder
	for y := 0; y < len(bm); y += 2 {
		for x := range bm[y] {
			top := !bm[y][x]
			bottom := y+1 < len(bm) && !bm[y+1][x]
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

// IssuerName is the issuer an authenticator app shows for the nsauth
// whose issuer URL is issuerURL: "nsauth HOST", or "nsauth" when the URL
// names no host. The login, the account page, one-time links and nsauth
// users totp enroll all name it so.
func IssuerName(issuerURL string) string {
	if u, err := url.Parse(issuerURL); err == nil && u.Host != "" {
		return "nsauth " + u.Host
	}
	return "nsauth"
}

// EnrolmentQR draws the otpauth:// URI of secret, for account at the
// nsauth of issuerURL, as the pages show it to be scanned.
func EnrolmentQR(issuerURL, account, secret string) (template.HTML, error) {
	uri, err := TOTPURI(IssuerName(issuerURL), account, secret)
	if err != nil {
		return "", err
	}
	return QRSVG(uri, 232)
}
