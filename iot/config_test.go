package iot

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestConfigValidation(t *testing.T) {
	ok := Config{Endpoint: "h", ClientID: "thing"}
	tests := []struct {
		name  string
		mut   func(*Config)
		field string // "" = valid
	}{
		{"valid defaults", func(*Config) {}, ""},
		{"client id 128 bytes", func(c *Config) { c.ClientID = strings.Repeat("a", 128) }, ""},
		{"client id 129 bytes", func(c *Config) { c.ClientID = strings.Repeat("a", 129) }, "client_id"},
		{"client id 128 bytes multi-byte", func(c *Config) { c.ClientID = strings.Repeat("é", 65) }, "client_id"},
		{"empty client id", func(c *Config) { c.ClientID = "" }, "client_id"},
		{"keep-alive 30s", func(c *Config) { c.KeepAlive = 30 * time.Second }, ""},
		{"keep-alive 1200s", func(c *Config) { c.KeepAlive = 1200 * time.Second }, ""},
		{"keep-alive 29s", func(c *Config) { c.KeepAlive = 29 * time.Second }, "keep_alive"},
		{"keep-alive 1201s", func(c *Config) { c.KeepAlive = 1201 * time.Second }, "keep_alive"},
		{"keep-alive fraction", func(c *Config) { c.KeepAlive = 45500 * time.Millisecond }, "keep_alive"},
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, "endpoint"},
		{"endpoint with scheme", func(c *Config) { c.Endpoint = "tls://h:8883" }, "endpoint"},
		{"endpoint bad port", func(c *Config) { c.Endpoint = "h:99999" }, "endpoint"},
		{"will with wildcard", func(c *Config) { c.Will = &Will{Topic: "a/#"} }, "will.topic"},
		{"will QoS 2", func(c *Config) { c.Will = &Will{Topic: "a", QoS: 2} }, "will.qos"},
		{"password without username", func(c *Config) { c.Password = "x" }, "password"},
		{"cert without key", func(c *Config) { c.CertFile = "c.pem" }, "cert/key"},
		{"negative queue size", func(c *Config) { c.Queue.Size = -1 }, "queue.size"},
		{"bad drop policy", func(c *Config) { c.Queue.Drop = 5 }, "queue.drop"},
		{"negative timeout", func(c *Config) { c.OperationTimeout = -time.Second }, "operation_timeout"},
		{"backoff base >= stable", func(c *Config) { c.Backoff = BackoffConfig{Base: time.Minute, Max: time.Minute, Stable: time.Minute} }, "backoff.stable"},
		{"unknown transport", func(c *Config) { c.Transport = 9 }, "transport"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mut(&c)
			err := c.withDefaults().validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) || ce.Field != tc.field {
				t.Fatalf("want ConfigError on %s, got %v", tc.field, err)
			}
		})
	}
}

func TestEndpointDefaultPorts(t *testing.T) {
	for _, tc := range []struct {
		endpoint  string
		transport Transport
		port      int
	}{
		{"h", TransportMQTTS, 8883}, {"h", TransportALPN, 443}, {"h", TransportWSS, 443},
		{"h", TransportTCP, 1883}, {"h:1234", TransportMQTTS, 1234}, {"[::1]:99", TransportTCP, 99},
	} {
		_, port, err := Config{Endpoint: tc.endpoint, Transport: tc.transport}.hostPort()
		if err != nil || port != tc.port {
			t.Errorf("%s %v: port %d (%v), want %d", tc.endpoint, tc.transport, port, err, tc.port)
		}
	}
	for s, want := range map[string]Transport{"": TransportMQTTS, "tls": TransportMQTTS, "alpn": TransportALPN, "WSS": TransportWSS, "ws": TransportWS, "tcp": TransportTCP} {
		if got, err := ParseTransport(s); err != nil || got != want {
			t.Errorf("ParseTransport(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseTransport("udp"); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "local development only") {
		t.Errorf("ParseTransport(udp): %v", err)
	}
}

func TestTopicMatching(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"#", "$aws/things/x", false},
		{"+/things/x", "$aws/things/x", false},
		{"$aws/things/+/shadow/update/delta", "$aws/things/pi/shadow/update/delta", true},
		{"$aws/things/+/shadow/name/+/get/#", "$aws/things/pi/shadow/name/led/get/accepted", true},
		{"a/+/c", "a//c", true},
		{"a/b/c", "a/b", false},
	}
	for _, tc := range tests {
		if got := topicMatches(tc.filter, tc.topic); got != tc.want {
			t.Errorf("topicMatches(%q, %q) = %v", tc.filter, tc.topic, got)
		}
	}
	for _, f := range []string{"", "a/#/b", "a/b#", "a+/b"} {
		if validateFilter(f) == nil {
			t.Errorf("filter %q accepted", f)
		}
	}
	for _, topic := range []string{"", "a/+", "a/#"} {
		if validateTopic(topic) == nil {
			t.Errorf("topic %q accepted", topic)
		}
	}
}

func TestQueueDecision(t *testing.T) {
	tests := []struct {
		length, size int
		drop         DropPolicy
		want         queueAction
	}{
		{0, 3, DropNewest, queueAccept},
		{2, 3, DropOldest, queueAccept},
		{3, 3, DropNewest, queueRejectNew},
		{3, 3, DropOldest, queueEvictOldest},
	}
	for _, tc := range tests {
		if got := queueDecision(tc.length, tc.size, tc.drop); got != tc.want {
			t.Errorf("%+v: got %v", tc, got)
		}
	}
}

// The v1 SDK's queue unit test: size 3, 10 appends.
func TestQueueStores(t *testing.T) {
	stores := map[string]func(t *testing.T) queueStore{
		"memory": func(*testing.T) queueStore { return &memoryStore{} },
		"bbolt": func(t *testing.T) queueStore {
			s, err := openBoltStore(filepath.Join(t.TempDir(), "q.db"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for name, open := range stores {
		for _, tc := range []struct {
			drop DropPolicy
			want string
		}{{DropNewest, "0,1,2"}, {DropOldest, "7,8,9"}} {
			t.Run(name+"/"+tc.drop.String(), func(t *testing.T) {
				q := &offlineQueue{store: open(t), size: 3, drop: tc.drop}
				defer q.close()
				full, evicted := 0, 0
				for i := 0; i < 10; i++ {
					n, err := q.enqueue(queuedMessage{Topic: "t", Payload: []byte{byte('0' + i)}, QoS: QoS1, Retain: i%2 == 0})
					evicted += n
					if errors.Is(err, ErrQueueFull) {
						full++
					} else if err != nil {
						t.Fatal(err)
					}
				}
				if tc.drop == DropNewest && (full != 7 || evicted != 0) || tc.drop == DropOldest && (full != 0 || evicted != 7) {
					t.Fatalf("full %d evicted %d", full, evicted)
				}
				var got []string
				for q.len() > 0 {
					m, ok, err := q.front()
					if err != nil || !ok {
						t.Fatal(ok, err)
					}
					if m.Topic != "t" || m.QoS != QoS1 || m.Retain != ((m.Payload[0]-'0')%2 == 0) {
						t.Fatalf("record changed in the store: %+v", m)
					}
					got = append(got, string(m.Payload))
					if err := q.remove(m); err != nil {
						t.Fatal(err)
					}
				}
				if strings.Join(got, ",") != tc.want {
					t.Fatalf("kept %v, want %s", got, tc.want)
				}
			})
		}
	}
}

func TestQueueRemoveOnlyTheSentMessage(t *testing.T) {
	// While the front message is being sent, DropOldest may evict it; the
	// drainer must then not remove the next (unsent) message.
	q := &offlineQueue{store: &memoryStore{}, size: 2, drop: DropOldest}
	q.enqueue(queuedMessage{Topic: "t", Payload: []byte("a")})
	q.enqueue(queuedMessage{Topic: "t", Payload: []byte("a")})
	sending, _, _ := q.front()
	q.enqueue(queuedMessage{Topic: "t", Payload: []byte("b")}) // evicts the one being sent
	if err := q.remove(sending); err != nil {
		t.Fatal(err)
	}
	if q.len() != 2 {
		t.Fatalf("removed an unsent message: %d left", q.len())
	}
}

func TestDiskQueueShrunkBelowContents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	s, err := openBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	big := &offlineQueue{store: s, size: 5, drop: DropOldest}
	for i := 0; i < 5; i++ {
		big.enqueue(queuedMessage{Topic: "t", Payload: []byte{byte('0' + i)}})
	}
	big.close()
	s, err = openBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	small := &offlineQueue{store: s, size: 2, drop: DropOldest}
	defer small.close()
	evicted, err := small.enqueue(queuedMessage{Topic: "t", Payload: []byte("new")})
	if err != nil || evicted != 4 || small.len() != 2 {
		t.Fatalf("evicted %d, len %d, err %v; want 4, 2", evicted, small.len(), err)
	}
	if m, _, _ := small.front(); string(m.Payload) != "4" {
		t.Fatalf("front %q, want the newest old message", m.Payload)
	}
	small.close()
	if _, err := small.enqueue(queuedMessage{Topic: "t"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("enqueue after close: %v", err)
	}
}

func TestDiskQueueDropsCorruptRecord(t *testing.T) {
	s, err := openBoltStore(filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(queueBucket).Put([]byte{0, 0, 0, 0, 0, 0, 0, 0}, []byte{9}) }); err != nil {
		t.Fatal(err)
	}
	s.count++
	if err := s.Push(queuedMessage{Topic: "t", Payload: []byte("good")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Front(); !errors.Is(err, ErrQueueStorage) || !strings.Contains(err.Error(), "dropped") {
		t.Fatalf("corrupt record: %v", err)
	}
	m, ok, err := s.Front()
	if err != nil || !ok || string(m.Payload) != "good" || s.Len() != 1 {
		t.Fatalf("after dropping the corrupt record: %+v %v %v len %d", m, ok, err, s.Len())
	}
}
