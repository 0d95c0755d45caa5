package e2e_test

import (
	"net/http"
	"sort"
	"strconv"
	"testing"
	"time"
)

// BenchmarkOrderToAccepted measures one order's way through the whole
// system — POST /orders, the order, customer and payment services, three
// outbox hops through the WAL relay and Kafka — until GET /orders/{id} shows
// it ACCEPTED. Orders are placed one after another; ns/op is the end-to-end
// latency, and p50/p99 are reported beside it.
//
//	go test -run '^$' -bench OrderToAccepted -benchtime 200x ./e2e/
func BenchmarkOrderToAccepted(b *testing.B) {
	s := startSystem(b, options{})
	body := []byte(`{"itemId":1,"quantity":1,"customerId":456,"paymentDue":1,"creditCardNo":"1234-5678-0000-4242"}`)
	var latencies []time.Duration
	for b.Loop() {
		start := time.Now()
		id := s.placeOrder(body).OrderID
		for {
			var v orderView
			if code := s.do(http.MethodGet, s.urls["order"]+"/orders/"+strconv.FormatInt(id, 10), nil, &v); code != http.StatusOK {
				b.Fatalf("GET order %d = %d", id, code)
			}
			if v.Status == "ACCEPTED" {
				break
			}
			if v.Status == "REJECTED" {
				b.Fatalf("order %d rejected", id)
			}
			time.Sleep(time.Millisecond)
		}
		latencies = append(latencies, time.Since(start))
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}
