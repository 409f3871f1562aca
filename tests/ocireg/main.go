// Command ocireg serves an in-memory OCI registry with the OCI 1.1 referrers API, so custody's
// tests exercise the API path as well as the tag-schema fallback. Test infrastructure only.
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	handler := registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(nopWriter{}, "", 0)))
	log.Fatal(http.ListenAndServe(*addr, handler))
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
