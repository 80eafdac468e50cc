package issuer

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/nsauth/nsauth/internal/issuer/devicepages"
	"github.com/nsauth/nsauth/internal/store"
)

// deviceSealer seals the device pages' login requests and tickets under
// the auth request key (devicepages.Sealer).
type deviceSealer struct{ s *requestSealer }

func (d deviceSealer) SealLogin(ar *store.AuthRequest) (string, error) { return d.s.seal(ar) }

func (d deviceSealer) SealTicket(t *devicepages.Ticket) string {
	return d.s.sealBytes(encodeTicket(t), deviceTicketPurpose)
}

func (d deviceSealer) OpenTicket(sealed string) (*devicepages.Ticket, error) {
	plain, err := d.s.openBytes(sealed, deviceTicketPurpose)
	if err != nil {
		return nil, devicepages.ErrMalformed
	}
	dec := decoder{b: plain}
	t := &devicepages.Ticket{Expires: time.UnixMilli(int64(min(dec.uvarint(), 1<<62))), AuthTime: time.UnixMilli(int64(min(dec.uvarint(), 1<<62)))}
	t.ID, t.UserID, t.Username = dec.string(), dec.string(), dec.string()
	t.CSRF = []byte(dec.string())
	n := dec.uvarint()
	if n > uint64(len(dec.b)) {
		return nil, devicepages.ErrMalformed
	}
	for range n {
		t.AMR = append(t.AMR, dec.string())
	}
	if dec.bad || len(dec.b) != 0 {
		return nil, devicepages.ErrMalformed
	}
	return t, nil
}

// deviceTicketPurpose is a ticket's additional data: nothing sealed for
// another purpose (a pending auth request) opens as a ticket.
const deviceTicketPurpose = "nsauth device ticket v1"

func encodeTicket(t *devicepages.Ticket) []byte {
	b := binary.AppendUvarint(nil, uint64(t.Expires.UnixMilli()))
	b = binary.AppendUvarint(b, uint64(t.AuthTime.UnixMilli()))
	for _, f := range []string{t.ID, t.UserID, t.Username, string(t.CSRF)} {
		b = appendString(b, f)
	}
	b = binary.AppendUvarint(b, uint64(len(t.AMR)))
	for _, v := range t.AMR {
		b = appendString(b, v)
	}
	return b
}

// sealBytes seals plain for purpose under the auth request key, base64url:
// nonce, then ciphertext and tag.
func (s *requestSealer) sealBytes(plain []byte, purpose string) string {
	out := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	_, _ = rand.Read(out)
	out = s.aead.Seal(out, out, plain, []byte(purpose))
	return base64.RawURLEncoding.EncodeToString(out)
}

// openBytes opens what sealBytes sealed for purpose, or fails with
// errRequestMalformed.
func (s *requestSealer) openBytes(blob, purpose string) ([]byte, error) {
	if len(blob) > devicepages.MaxFormBytes {
		return nil, errRequestMalformed
	}
	raw, err := base64.RawURLEncoding.DecodeString(blob)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return nil, errRequestMalformed
	}
	ns := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:ns], raw[ns:], []byte(purpose))
	if err != nil {
		return nil, errRequestMalformed
	}
	return plain, nil
}
