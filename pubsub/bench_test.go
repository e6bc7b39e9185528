package pubsub_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/livekv/livekv/internal/gcbusy"
	"github.com/livekv/livekv/pattern"
	"github.com/livekv/livekv/pubsub"
)

// BenchmarkDeliver_OneSubscriber: one op is one event published and read
// by one subscriber.
func BenchmarkDeliver_OneSubscriber(b *testing.B) {
	br := pubsub.NewBroker(0, nil)
	defer br.Close()
	s, err := br.Subscribe([]*pattern.Pattern{pattern.MustParse("user:*")}, &pubsub.SubscribeOptions{Buffer: 4096})
	if err != nil {
		b.Fatal(err)
	}
	evs := []pubsub.Event{{Type: pubsub.Put, Key: "user:1", Value: "v"}}
	b.ReportAllocs()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < b.N; i++ {
			<-s.Events()
		}
	}()
	for i := 1; i <= b.N; i++ {
		br.Publish(pubsub.Batch{Revision: int64(i), Events: evs})
	}
	<-done
}

// BenchmarkFanout: one op is one event delivered to each of n matching
// subscribers; ns/delivery is the cost per subscriber.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			br := pubsub.NewBroker(0, nil)
			defer br.Close()
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				s, err := br.Subscribe([]*pattern.Pattern{pattern.MustParse(fmt.Sprintf("room:%d:*", i%10)), pattern.MustParse("room:*")}, &pubsub.SubscribeOptions{Buffer: 1024})
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for got := 0; got < b.N; got++ {
						<-s.Events()
					}
				}()
			}
			evs := []pubsub.Event{{Type: pubsub.Put, Key: "room:1:msg", Value: "hello"}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				br.Publish(pubsub.Batch{Revision: int64(i), Events: evs})
			}
			wg.Wait()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// BenchmarkPublish_FullHistory: one op is one batch of one event
// published, with no subscriber, into a history already at its bound
// (the default 100,000 events), so that each publish evicts one; with
// the collector idle and while it marks back to back (each batch's
// events are pointers that a copy of the history would pass through the
// write barrier).
func BenchmarkPublish_FullHistory(b *testing.B) {
	for _, busy := range []bool{false, true} {
		b.Run(map[bool]string{false: "gc=idle", true: "gc=busy"}[busy], func(b *testing.B) {
			br := pubsub.NewBroker(0, nil)
			defer br.Close()
			evs := []pubsub.Event{{Type: pubsub.Put, Key: "user:1", Value: "v"}}
			rev := int64(0)
			for range pubsub.DefaultHistoryEvents {
				rev++
				br.Publish(pubsub.Batch{Revision: rev, Events: evs})
			}
			if busy {
				defer gcbusy.Start()()
			}
			b.ReportAllocs()
			for b.Loop() {
				rev++
				br.Publish(pubsub.Batch{Revision: rev, Events: evs})
			}
		})
	}
}
