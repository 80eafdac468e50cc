package main

import (
	"net/url"
	"testing"
)

func TestLoginForm(t *testing.T) {
	t.Parallel()
	base, _ := url.Parse("http://127.0.0.1:18080/login?authRequestID=x")
	for _, tc := range []struct {
		name       string
		page       string
		wantAction string
		wantFields url.Values
		wantErr    bool
	}{
		{"the login page", `<html><body><form method="post" action="/login" autocomplete="on">
<input type="hidden" name="authRequestID" value="V1_abc">
<input type="hidden" name="csrf" value="a&amp;b">
<input id="username" name="username" type="text" value="">
<input id="password" name="password" type="password">
<button type="submit">Sign in</button></form>
<form action="/other"><input type="hidden" name="later" value="no"></form></body></html>`,
			"http://127.0.0.1:18080/login", url.Values{"authRequestID": {"V1_abc"}, "csrf": {"a&b"}}, false},
		{"no action posts to the page", `<form><input type="hidden" name="k" value="v"/></form>`,
			"http://127.0.0.1:18080/login?authRequestID=x", url.Values{"k": {"v"}}, false},
		{"hidden fields outside the form are not sent", `<input type="hidden" name="outside" value="1"><form action="/login"></form>`,
			"http://127.0.0.1:18080/login", url.Values{}, false},
		{"no form", `<p>You are logged in</p>`, "", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			action, fields, err := loginForm(tc.page, base)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if action != tc.wantAction {
				t.Errorf("action = %q, want %q", action, tc.wantAction)
			}
			if fields.Encode() != tc.wantFields.Encode() {
				t.Errorf("fields = %v, want %v", fields, tc.wantFields)
			}
		})
	}
}
