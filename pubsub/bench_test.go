package pubsub_test

import (
	"fmt"
	"sync"
	"testing"

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
