package browsersession_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/issuer/browsersession"
	"github.com/nsauth/nsauth/internal/store"
)

// fakeStore keeps sessions by token in memory.
type fakeStore struct {
	sessions map[string]*store.Session
	users    map[string]*store.User
	idle     time.Duration
	touched  []string // the browsers that marked a session seen
}

func (f *fakeStore) CreateSession(_ context.Context, s *store.Session, token string) error {
	s.ID = "s-" + token[:4]
	f.sessions[token] = s
	return nil
}

func (f *fakeStore) SessionByToken(_ context.Context, token string, idle time.Duration) (*store.Session, error) {
	f.idle = idle
	s, ok := f.sessions[token]
	if !ok {
		return nil, store.ErrNotFound
	}
	return s, nil
}

func (f *fakeStore) TouchSession(_ context.Context, id, browser string, idle time.Duration) (*store.Session, error) {
	for _, s := range f.sessions {
		if s.ID == id && s.Browser == browser {
			f.touched = append(f.touched, browser)
			return s, nil
		}
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) UserByID(_ context.Context, id string) (*store.User, error) {
	u, ok := f.users[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return u, nil
}

// devices answers DeviceOf from a header, as if it were the device cookie.
type devices struct{}

func (devices) DeviceOf(r *http.Request, account string) (string, bool) {
	v := r.Header.Get("X-Device-" + account)
	return v, v != ""
}

func TestSessionCookie(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		secure bool
		cookie string
	}{
		{"http", false, "nsauth_session"},
		{"https", true, "__Host-nsauth_session"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := &fakeStore{sessions: map[string]*store.Session{}, users: map[string]*store.User{"u1": {ID: "u1", Username: "alice"}}}
			m := browsersession.New(browsersession.Config{Store: st, Devices: devices{}, Secure: tc.secure, Now: func() time.Time { return now }})
			w := httptest.NewRecorder()
			s, err := m.Start(w, httptest.NewRequest(http.MethodGet, "/login", nil), "u1", []string{"pwd"}, now, "dev1")
			if err != nil {
				t.Fatal(err)
			}
			if !s.ExpiresAt.Equal(now.Add(browsersession.DefaultLifetime)) {
				t.Errorf("ExpiresAt = %v", s.ExpiresAt)
			}
			cookies := w.Result().Cookies()
			if len(cookies) != 1 {
				t.Fatalf("cookies = %+v", cookies)
			}
			c := cookies[0]
			if c.Name != tc.cookie || c.Secure != tc.secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" ||
				c.MaxAge != int(browsersession.DefaultLifetime/time.Second) || len(c.Value) != 43 {
				t.Errorf("cookie = %+v", c)
			}

			for _, bc := range []struct {
				name   string
				device string
				user   *store.User
				want   bool
			}{
				{"bound browser", "dev1", &store.User{ID: "u1", Username: "alice"}, true},
				{"no device cookie", "", &store.User{ID: "u1", Username: "alice"}, false},
				{"another browser's device cookie", "dev2", &store.User{ID: "u1", Username: "alice"}, false},
				{"disabled user", "dev1", &store.User{ID: "u1", Username: "alice", DisabledAt: now}, false},
			} {
				st.users["u1"] = bc.user
				st.touched = nil
				r := httptest.NewRequest(http.MethodGet, "/login", nil)
				r.AddCookie(c)
				if bc.device != "" {
					r.Header.Set("X-Device-alice", bc.device)
				}
				if got, ok := m.Current(r); ok != bc.want || ok && got.ID != s.ID {
					t.Errorf("%s: Current = %v, %v; want %v", bc.name, got, ok, bc.want)
				}
				// Only a use by the session's own browser keeps it alive.
				if want := []string{"dev1"}; bc.want && !slices.Equal(st.touched, want) || !bc.want && len(st.touched) != 0 {
					t.Errorf("%s: marked seen by %q", bc.name, st.touched)
				}
			}
			if st.idle != browsersession.DefaultIdleTimeout {
				t.Errorf("looked up with idle %v", st.idle)
			}
			// A malformed or unknown cookie is no session.
			other := "A"
			if c.Value[42:] == other {
				other = "B"
			}
			for _, v := range []string{"x", c.Value[:42] + other, "not base64url!!" + c.Value[15:]} {
				r := httptest.NewRequest(http.MethodGet, "/login", nil)
				r.AddCookie(&http.Cookie{Name: tc.cookie, Value: v})
				r.Header.Set("X-Device-alice", "dev1")
				if _, ok := m.Current(r); ok {
					t.Errorf("cookie %q: a session", v)
				}
			}

			w = httptest.NewRecorder()
			m.Clear(w)
			if cl := w.Result().Cookies(); len(cl) != 1 || cl[0].Name != tc.cookie || cl[0].MaxAge >= 0 || cl[0].Value != "" {
				t.Errorf("Clear: cookies = %+v", cl)
			}
		})
	}
}
