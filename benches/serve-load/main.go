// serve-load sends a fixed number of HTTPS requests to `custody serve` over keep-alive
// connections (HTTP/1.1, as the API server does) and prints throughput and latency as JSON.
// scripts/bench-serve builds and runs it; it uses the Go standard library only.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "", "host:port of custody serve")
	name := flag.String("name", "custody.custody-system.svc", "TLS server name to dial")
	caFile := flag.String("ca", "", "PEM CA that signed the serving certificate")
	path := flag.String("path", "/admission/validate?timeout=10s", "request path")
	bodyFile := flag.String("body", "", "request body file")
	expect := flag.String("expect", "\"allowed\":true", "text every answer must contain")
	n := flag.Int("n", 1000, "requests in all")
	c := flag.Int("c", 4, "concurrent connections")
	flag.Parse()

	ca, err := os.ReadFile(*caFile)
	check(err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		check(fmt.Errorf("no certificate in %s", *caFile))
	}
	body, err := os.ReadFile(*bodyFile)
	check(err)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: *name, NextProtos: []string{"http/1.1"}},
		MaxIdleConnsPerHost: *c,
		MaxConnsPerHost:     *c,
		ForceAttemptHTTP2:   false,
		DialContext:         dialer.DialContext,
	}
	client := &http.Client{Transport: transport, Timeout: 60 * time.Second}
	url := "https://" + *addr + *path

	latencies := make([]time.Duration, *n)
	var next, failures int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := atomic.AddInt64(&next, 1) - 1
				if i >= int64(*n) {
					return
				}
				t := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				var answer []byte
				if err == nil {
					answer, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && (resp.StatusCode != 200 || !bytes.Contains(answer, []byte(*expect))) {
						err = fmt.Errorf("status %d: %.300s", resp.StatusCode, answer)
					}
				}
				latencies[i] = time.Since(t)
				if err != nil {
					atomic.AddInt64(&failures, 1)
					firstFailure.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	pct := func(p float64) float64 {
		i := int(p * float64(len(latencies)-1))
		return float64(latencies[i].Microseconds()) / 1000
	}
	out := map[string]any{
		"requests":    *n,
		"concurrency": *c,
		"failures":    failures,
		"seconds":     elapsed.Seconds(),
		"perSecond":   float64(*n) / elapsed.Seconds(),
		"p50Ms":       pct(0.50),
		"p99Ms":       pct(0.99),
		"maxMs":       pct(1.0),
	}
	if f := firstFailure.Load(); f != nil {
		out["firstFailure"] = f
	}
	check(json.NewEncoder(os.Stdout).Encode(out))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve-load:", err)
		os.Exit(2)
	}
}
