// Command ocireg serves an in-memory OCI registry with the OCI 1.1 referrers API, so custody's
// tests exercise the API path as well as the tag-schema fallback. Test infrastructure only.
//
// go-containerregistry's pkg/registry (v0.22.1) lists every referrer with artifactType = the
// config's media type, even when the manifest has its own artifactType. The distribution spec
// says a manifest's artifactType comes first (config.mediaType only when it has none), and
// consumers filter on it: `gh attestation verify --bundle-from-oci` keeps only referrers whose
// artifactType starts with application/vnd.dev.sigstore.bundle. So the referrers answer is
// corrected here: each listed manifest is read back and its own artifactType, when set, wins.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	handler := registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(nopWriter{}, "", 0)))
	// With port 0 the kernel picks a free port; saying which one lets a test use it without
	// the race of probing for a free port first.
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", listener.Addr())
	log.Fatal(http.Serve(listener, referrersArtifactType(handler)))
}

func referrersArtifactType(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := strings.Index(r.URL.Path, "/referrers/")
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/v2/") || i < 0 {
			next.ServeHTTP(w, r)
			return
		}
		repo := r.URL.Path[len("/v2/"):i]
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var index map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &index) != nil {
			copyResponse(w, rec.Code, rec.Header(), rec.Body.Bytes())
			return
		}
		manifests, _ := index["manifests"].([]any)
		for _, m := range manifests {
			desc, ok := m.(map[string]any)
			if !ok {
				continue
			}
			digest, _ := desc["digest"].(string)
			get := httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/manifests/"+digest, nil)
			got := httptest.NewRecorder()
			next.ServeHTTP(got, get)
			var manifest struct {
				ArtifactType string `json:"artifactType"`
			}
			if got.Code == http.StatusOK && json.Unmarshal(got.Body.Bytes(), &manifest) == nil && manifest.ArtifactType != "" {
				desc["artifactType"] = manifest.ArtifactType
			}
		}
		body, err := json.Marshal(index)
		if err != nil {
			body = rec.Body.Bytes()
		}
		copyResponse(w, rec.Code, rec.Header(), body)
	})
}

func copyResponse(w http.ResponseWriter, code int, header http.Header, body []byte) {
	for k, v := range header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = bytes.NewReader(body).WriteTo(w)
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
