package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pattern"
	"github.com/redis/go-redis/v9"
)

// subscriptionPatterns makes n patterns of every kind, most of them with
// a literal anchor, as an application's subscriptions would be.
func subscriptionPatterns(n int) []*pattern.Pattern {
	pats := make([]*pattern.Pattern, 0, n)
	for i := 0; len(pats) < n; i++ {
		var src string
		switch i % 10 {
		case 0, 1, 2, 3:
			src = fmt.Sprintf("user:%d", i)
		case 4, 5:
			src = fmt.Sprintf("user:%d:*", i)
		case 6:
			src = fmt.Sprintf("*:session:%d", i)
		case 7, 8:
			src = fmt.Sprintf("room:%d:*:msg", i)
		default:
			src = fmt.Sprintf("/^order:%d:\\d+$/", i)
		}
		pats = append(pats, pattern.MustParse(src))
	}
	return pats
}

func runPatterns(cfg config, progress func(string)) ([]Result, error) {
	pats := subscriptionPatterns(cfg.subs)
	x := pattern.NewIndex[int]()
	for i, p := range pats {
		x.Add(p, i)
	}
	r := rand.New(rand.NewPCG(5, 5))
	keys := make([]string, 1000)
	for i := range keys {
		n := r.IntN(cfg.subs)
		keys[i] = []string{fmt.Sprintf("user:%d", n), fmt.Sprintf("user:%d:name", n), fmt.Sprintf("x:session:%d", n),
			fmt.Sprintf("room:%d:a:msg", n), fmt.Sprintf("order:%d:7", n), "nothing:matches"}[i%6]
	}
	var indexRuns, linearRuns []float64
	for run := 0; run < cfg.runs; run++ {
		progress(fmt.Sprintf("run %d of %d", run+1, cfg.runs))
		matched := 0
		start := time.Now()
		for _, k := range keys {
			x.Match(k, func(int) bool { matched++; return true })
		}
		indexRuns = append(indexRuns, float64(time.Since(start).Nanoseconds())/float64(len(keys)))
		linear := 0
		start = time.Now()
		for _, k := range keys[:100] { // the scan is slow: a tenth of the keys
			for _, p := range pats {
				if p.Match(k) {
					linear++
				}
			}
		}
		linearRuns = append(linearRuns, float64(time.Since(start).Nanoseconds())/100)
		if matched == 0 {
			return nil, fmt.Errorf("no key matched")
		}
	}
	cas := fmt.Sprintf("subscriptions=%d", cfg.subs)
	return []Result{
		newResult("patterns", cas, "livekv", "ns/key", false, indexRuns),
		newResult("patterns", cas, "linear scan", "ns/key", false, linearRuns),
	}, nil
}

func runDelivery(cfg config, progress func(string)) ([]Result, error) {
	writes := 200
	if cfg.quick {
		writes = 20
	}
	var results []Result
	for _, n := range []int{1, 100, 1000} {
		progress(fmt.Sprintf("%d subscribers", n))
		runs, err := delivery(n, writes, cfg.runs)
		if err != nil {
			return nil, err
		}
		results = append(results, newResult("delivery", fmt.Sprintf("subscribers=%d", n), "livekv", "µs to all", false, runs))
	}
	return results, nil
}

// delivery opens a store with n in-process subscribers to one pattern and
// returns, for each of runs runs, the median time in µs from a write to its
// event at all of them.
func delivery(n, writes, runs int) ([]float64, error) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var got atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	for range n {
		s, err := db.Subscribe([]string{"hot:*"}, nil)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range s.Events() {
				got.Add(1)
			}
		}()
	}
	var out []float64
	for range runs {
		// Gosched, not sleep: the subscribers are goroutines of this process.
		d, err := measureFanout(writes, int64(n), &got, runtime.Gosched, func(int) error {
			_, err := db.Set("hot:1", "v", nil)
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, float64(d.Nanoseconds())/1000)
	}
	return out, nil
}

// notifyClients is how many pattern subscribers the notify workload has.
const notifyClients = 100

func runNotify(cfg config, progress func(string)) ([]Result, error) {
	writes := 100
	if cfg.quick {
		writes = 10
	}
	var results []Result
	progress("livekv adapter")
	runs, err := repeat(cfg.runs, func() (float64, error) { return notifyLivekv(writes) })
	if err != nil {
		return nil, fmt.Errorf("livekv: %w", err)
	}
	results = append(results, newResult("notify", fmt.Sprintf("subscribers=%d", notifyClients), "livekv", "ms to all", false, runs))
	if _, err := exec.LookPath("redis-server"); err != nil {
		r := Result{Workload: "notify", Case: fmt.Sprintf("subscribers=%d", notifyClients), Engine: "redis", Unit: "ms to all",
			Note: "not run: redis-server is not installed (apt-get install redis-server)"}
		return append(results, r), nil
	}
	progress("redis")
	runs, err = repeat(cfg.runs, func() (float64, error) { return notifyRedis(writes) })
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return append(results, newResult("notify", fmt.Sprintf("subscribers=%d", notifyClients), "redis", "ms to all", false, runs)), nil
}

func repeat(n int, fn func() (float64, error)) ([]float64, error) {
	var out []float64
	for i := 0; i < n; i++ {
		v, err := fn()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// measureFanout sets a key writes times through set and returns the median
// time until want notifications, counted by got, have arrived; pause runs
// between looks at got.
func measureFanout(writes int, want int64, got *atomic.Int64, pause func(), set func(i int) error) (time.Duration, error) {
	var lat []time.Duration
	for i := 0; i < writes; i++ {
		got.Store(0)
		start := time.Now()
		if err := set(i); err != nil {
			return 0, err
		}
		for got.Load() < want {
			if time.Since(start) > 10*time.Second {
				return 0, fmt.Errorf("%d of %d subscribers notified", got.Load(), want)
			}
			pause()
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return lat[len(lat)/2], nil
}

// sleepBriefly is the pause between looks for notifications that come over
// the network.
func sleepBriefly() { time.Sleep(20 * time.Microsecond) }

// ms is d in milliseconds.
func ms(d time.Duration, err error) (float64, error) { return float64(d.Microseconds()) / 1000, err }

func notifyLivekv(writes int) (float64, error) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	a, err := adapter.New(db, &adapter.Options{APIKeys: []string{"bench"}})
	if err != nil {
		return 0, err
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	defer a.Shutdown(context.Background())
	token, _, err := a.IssueToken(adapter.TokenConfig{SubscribePatterns: []string{"room:*"}})
	if err != nil {
		return 0, err
	}
	wsURL := strings.Replace(srv.URL, "http", "ws", 1) + "/ws?"
	ctx := context.Background()
	var got atomic.Int64
	var wg sync.WaitGroup
	var conns []*websocket.Conn
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
		wg.Wait()
	}()
	for i := 0; i < notifyClients; i++ {
		c, _, err := websocket.Dial(ctx, wsURL+"token="+url.QueryEscape(token), nil)
		if err != nil {
			return 0, err
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
				got.Add(1)
			}
		}()
	}
	writer, _, err := websocket.Dial(ctx, wsURL+"apiKey=bench", nil)
	if err != nil {
		return 0, err
	}
	conns = append(conns, writer)
	// Every subscription is live once a write reaches every client.
	for i := 0; ; i++ {
		warm := func(int) error { _, err := db.Set("room:warm", "up", nil); return err }
		if _, err := measureFanout(1, notifyClients, &got, sleepBriefly, warm); err == nil {
			break
		} else if i == 10 {
			return 0, err
		}
	}
	return ms(measureFanout(writes, notifyClients, &got, sleepBriefly, func(i int) error {
		msg := fmt.Sprintf(`{"op":2,"key":"room:1","value":"message %d","messageId":%d}`, i, i+1)
		if err := writer.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			return err
		}
		_, _, err := writer.Read(ctx) // the reply
		return err
	}))
}

// notifyRedis runs redis-server on a free loopback port with keyspace
// notifications, and measures SET to 100 PSUBSCRIBE clients.
func notifyRedis(writes int) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--notify-keyspace-events", "KA")
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	ctx := context.Background()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	client := redis.NewClient(&redis.Options{Addr: addr})
	defer client.Close()
	for i := 0; client.Ping(ctx).Err() != nil; i++ {
		if i == 200 {
			return 0, fmt.Errorf("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var got atomic.Int64
	var wg sync.WaitGroup
	var subs []*redis.PubSub
	for i := 0; i < notifyClients; i++ {
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		ps := c.PSubscribe(ctx, "__keyspace@0__:room:*")
		if _, err := ps.Receive(ctx); err != nil {
			return 0, err
		}
		subs = append(subs, ps)
		ch := ps.Channel()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ch {
				got.Add(1)
			}
		}()
	}
	defer func() {
		for _, ps := range subs {
			ps.Close()
		}
		wg.Wait()
	}()
	return ms(measureFanout(writes, notifyClients, &got, sleepBriefly, func(i int) error {
		return client.Set(ctx, "room:1", fmt.Sprintf("message %d", i), 0).Err()
	}))
}
