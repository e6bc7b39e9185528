package adapter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
)

// BenchmarkWS_InFlight64 measures requests per second on one connection
// over loopback with 64 requests in flight (sets of 1,000 keys, 100-byte
// values, DB in memory). The rate limit is lifted: it is what is measured.
func BenchmarkWS_InFlight64(b *testing.B) {
	f := newFixture(b, &adapter.Options{RequestRate: 1e9, RequestBurst: 1 << 20})
	ws, _, err := f.dialRaw("apiKey="+apiKey, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.CloseNow()
	ctx := context.Background()
	value := strings.Repeat("v", 100)
	slots := make(chan struct{}, 64)
	done := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() {
		for i := 0; i < b.N; i++ {
			_, data, err := ws.Read(ctx)
			if err != nil {
				done <- err
				return
			}
			var r struct{ Code int }
			if err := json.Unmarshal(data, &r); err != nil || r.Code != 200 {
				done <- fmt.Errorf("reply %s", data)
				return
			}
			<-slots
		}
		done <- nil
	}()
	for i := 0; i < b.N; i++ {
		select {
		case slots <- struct{}{}:
		case err := <-done:
			b.Fatal(err)
		}
		msg, _ := json.Marshal(map[string]any{"op": 2, "key": fmt.Sprintf("key:%04d", i%1000), "value": value, "messageId": i + 1})
		if err := ws.Write(ctx, websocket.MessageText, msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkWS_Fanout1000 measures the time from one write to its
// notification on each of 1,000 subscribed WebSocket connections over
// loopback: the median and the slowest connection of each write.
func BenchmarkWS_Fanout1000(b *testing.B) {
	const conns = 1000
	f := newFixture(b, nil)
	tok := url.QueryEscape(f.token(`{"subscribeKeys":["hot"]}`))
	var got atomic.Int64
	var mu sync.Mutex
	var arrivals []time.Duration
	var sent atomic.Int64 // unix ns of the write under way
	var wg sync.WaitGroup
	clients := make([]*websocket.Conn, conns)
	for i := range clients {
		ws, _, err := f.dialRaw("token="+tok, nil)
		if err != nil {
			b.Fatal(err)
		}
		clients[i] = ws
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := ws.Read(context.Background()); err != nil {
					return
				}
				d := time.Duration(time.Now().UnixNano() - sent.Load())
				mu.Lock()
				arrivals = append(arrivals, d)
				mu.Unlock()
				got.Add(1)
			}
		}()
	}
	// Every subscription is live once a write reaches every connection.
	for w := 0; ; w++ {
		got.Store(0)
		sent.Store(time.Now().UnixNano())
		if _, err := f.db.Set("hot", "warm-up", nil); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for got.Load() < conns && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got.Load() == conns {
			break
		}
		if w > 20 {
			b.Fatalf("only %d of %d connections notified", got.Load(), conns)
		}
	}
	var slowest, medians []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mu.Lock()
		arrivals = arrivals[:0]
		mu.Unlock()
		got.Store(0)
		sent.Store(time.Now().UnixNano())
		if _, err := f.db.Set("hot", fmt.Sprint(i), nil); err != nil {
			b.Fatal(err)
		}
		for got.Load() < conns {
			time.Sleep(50 * time.Microsecond)
		}
		mu.Lock()
		sort.Slice(arrivals, func(i, j int) bool { return arrivals[i] < arrivals[j] })
		medians = append(medians, arrivals[len(arrivals)/2])
		slowest = append(slowest, arrivals[len(arrivals)-1])
		mu.Unlock()
	}
	b.StopTimer()
	sort.Slice(slowest, func(i, j int) bool { return slowest[i] < slowest[j] })
	sort.Slice(medians, func(i, j int) bool { return medians[i] < medians[j] })
	b.ReportMetric(float64(medians[len(medians)/2].Microseconds())/1000, "ms-median-conn")
	b.ReportMetric(float64(slowest[len(slowest)/2].Microseconds())/1000, "ms-all-notified")
	for _, ws := range clients {
		ws.CloseNow()
	}
	wg.Wait()
}

// BenchmarkWS_Burst100 measures how fast a burst of writes reaches
// subscribers that keep up: 100 connections subscribed to one key, and
// writes of it back to back, 1,000 an op; the op ends when every
// connection has had every one. Events a subscription's forwarder has not
// taken wait in its buffer or, past it, in the change history.
func BenchmarkWS_Burst100(b *testing.B) {
	const conns, burst = 100, 1000
	f := newFixture(b, nil)
	tok := url.QueryEscape(f.token(`{"subscribeKeys":["hot"]}`))
	var got atomic.Int64
	var wg sync.WaitGroup
	clients := make([]*websocket.Conn, conns)
	for i := range clients {
		ws, _, err := f.dialRaw("token="+tok, nil)
		if err != nil {
			b.Fatal(err)
		}
		ws.SetReadLimit(1 << 20)
		clients[i] = ws
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := ws.Read(context.Background()); err != nil {
					return
				}
				got.Add(1)
			}
		}()
	}
	// Every subscription is live once a write reaches every connection.
	for w := 0; got.Load() < conns; w++ {
		got.Store(0)
		if _, err := f.db.Set("hot", "warm-up", nil); err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if w > 50 {
			b.Fatalf("only %d of %d connections notified", got.Load(), conns)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got.Store(0)
		for j := range burst {
			if _, err := f.db.Set("hot", fmt.Sprint(j), nil); err != nil {
				b.Fatal(err)
			}
		}
		for got.Load() < conns*burst {
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*conns*burst), "ns/event")
	for _, ws := range clients {
		ws.CloseNow()
	}
	wg.Wait()
}
