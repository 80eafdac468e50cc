package inprocess

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// responseWriter is the http.ResponseWriter the handler writes to: it
// keeps the status, the header as it was when the status was written, and
// a body of at most max bytes, and then becomes an *http.Response.
//
// Only the handler's goroutine touches it until the handler returns; the
// transport reads it after that, ordered by a channel.
type responseWriter struct {
	header http.Header // what the handler may still change
	sent   http.Header // the header as of WriteHeader
	status int
	body   bytes.Buffer
	max    int64
	err    error
}

func newResponseWriter(maxBody int64) *responseWriter {
	return &responseWriter{header: make(http.Header), max: maxBody}
}

// Header implements http.ResponseWriter.
func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader implements http.ResponseWriter. As in net/http, the first
// call wins, later changes to the header are not sent, and informational
// (1xx) statuses are not the response.
func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 || w.err != nil {
		return
	}
	if code < 100 || code > 999 {
		w.err = fmt.Errorf("inprocess: handler wrote invalid status %d", code)
		return
	}
	if code < 200 {
		return
	}
	w.status = code
	w.sent = w.header.Clone()
}

// Write implements http.ResponseWriter. Writing more than the bound fails
// this write and the whole request.
func (w *responseWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.status == 0 {
		if len(p) > 0 && w.header.Get("Content-Type") == "" && w.header.Get("Transfer-Encoding") == "" {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		w.WriteHeader(http.StatusOK)
		if w.err != nil {
			return 0, w.err
		}
	}
	if int64(w.body.Len())+int64(len(p)) > w.max {
		w.err = fmt.Errorf("%w (more than %d bytes)", ErrResponseTooLarge, w.max)
		return 0, w.err
	}
	return w.body.Write(p)
}

// Flush implements http.Flusher. The response is delivered whole once the
// handler returns, so there is nothing to push early.
func (w *responseWriter) Flush() {}

// response turns what the handler wrote into the response to req.
func (w *responseWriter) response(req *http.Request) (*http.Response, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	body := w.body.Bytes()
	if req.Method == http.MethodHead || w.status == http.StatusNoContent || w.status == http.StatusNotModified {
		body = nil
	}
	header := w.sent
	if header.Get("Content-Length") == "" && header.Get("Transfer-Encoding") == "" &&
		w.status != http.StatusNoContent && w.status != http.StatusNotModified {
		header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	return &http.Response{
		Status:        strings.TrimSpace(strconv.Itoa(w.status) + " " + http.StatusText(w.status)),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}
