// Package httpserver holds the http.Server settings productsd serves with,
// shared with loadtest's static ceiling without the load generator
// linking the product service.
package httpserver

import (
	"log"
	"net/http"
	"time"
)

// New returns the http.Server that productsd serves h with. Its
// timeouts bound what a slow or stalled client can hold: headers within
// 5s, a whole request within 15s, a response written within 30s, an idle
// keep-alive connection for 2 minutes. They cost every request a few
// deadline updates; loadtest's static ceiling uses the same server, so
// that a comparison with it measures the cache, not the timeout policy.
func New(h http.Handler, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
	}
}
