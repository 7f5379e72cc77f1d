package bus_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/bustest"
	"github.com/nats-io/nats.go"
)

// BenchmarkStampDecode measures the envelope: stamping into a reused NATS
// message, then decoding (verifying) it.
func BenchmarkStampDecode(b *testing.B) {
	st := newStamper(b)
	payload := []byte(`{"tool":"get_weather","args":{"city":"Oslo"}}`)
	m := bus.Message{Topic: "tool.v1.execute.get_weather", Payload: payload, Principal: "alice",
		Attribution: bus.Verified, Source: "550e8400-e29b-41d4-a716-446655440000", Origin: bus.OriginLocal}
	var msg nats.Msg
	b.Run("stamp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			st.StampTo(&msg, m.Topic, &m)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d := bus.Decode(&msg, bus.Subjects{}, testKey); d.Attribution != bus.Verified {
				b.Fatal("not verified")
			}
		}
	})
	b.Run("both", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			st.StampTo(&msg, m.Topic, &m)
			_ = bus.Decode(&msg, bus.Subjects{}, testKey)
		}
	})
}

func BenchmarkMatchRoute(b *testing.B) {
	cases := []struct{ name, pattern, topic string }{
		{"literal", "tool.v1.execute.get_weather", "tool.v1.execute.get_weather"},
		{"subtree", "tool.v1.*", "tool.v1.execute.get_weather.result"},
		{"middle", "tool.v1.execute.*.result", "tool.v1.execute.get_weather.result"},
		{"miss", "llm.v1.*", "tool.v1.execute.get_weather"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bus.MatchRoute(c.pattern, c.topic)
			}
		})
	}
	b.Run("strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			bus.MatchStrict("tool.v1.execute.*", "tool.v1.execute.get_weather")
		}
	})
	b.Run("covers", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			bus.CoversRoute("tool.v1.*", "tool.v1.execute.*.result")
		}
	})
}

// BenchmarkKVGetPut compares one Put plus one Get through bus.KV with the
// same operations on the raw JetStream bucket, in the same run.
func BenchmarkKVGetPut(b *testing.B) {
	s := bustest.RunServer(b)
	c := bustest.Conn(b, s)
	ctx := context.Background()
	kv, err := bus.OpenKV(ctx, c, bus.KVConfig{})
	if err != nil {
		b.Fatal(err)
	}
	raw := kv.Bucket()
	val := []byte(`{"count":42}`)
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			key := "alice.capsule.counter.k" + strconv.Itoa(i%64)
			if _, err := raw.Put(ctx, key, val); err != nil {
				b.Fatal(err)
			}
			if _, err := raw.Get(ctx, key); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("bus", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			key := "k" + strconv.Itoa(i%64)
			if _, err := kv.Put(ctx, "alice:capsule:counter", key, val); err != nil {
				b.Fatal(err)
			}
			if _, _, err := kv.Get(ctx, "alice:capsule:counter", key); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkPublish measures a stamped publish through Conn (pooled
// message) against a raw nats.go publish of the same bytes.
func BenchmarkPublish(b *testing.B) {
	s := bustest.RunServer(b)
	c := bustest.Conn(b, s, bus.WithStamper(newStamper(b)))
	payload := []byte(`{"n":1}`)
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.NATS().Publish("bench.v1.pub", payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bus", func(b *testing.B) {
		b.ReportAllocs()
		m := bus.Message{Topic: "bench.v1.pub", Payload: payload, Principal: "alice", Attribution: bus.Verified}
		for b.Loop() {
			if err := c.Publish(&m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
