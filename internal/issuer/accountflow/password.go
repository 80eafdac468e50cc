package accountflow

import "net/http"

// submitPassword is POST /account/password: a new password, with the
// current one.
func (f *Flow) submitPassword(w http.ResponseWriter, r *http.Request) {
	a, ok := f.account(w, r)
	if !ok || !f.requireRecent(w, r, a) {
		return
	}
	f.show(w, r, a, view{Status: http.StatusNotImplemented, Section: "password", Error: "Not yet."})
}
