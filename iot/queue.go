package iot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// queuedMessage is one publish waiting in the offline queue.
type queuedMessage struct {
	ID      uint64 // assigned by the store; increases in FIFO order
	Topic   string
	Payload []byte
	QoS     QoS
	Retain  bool
}

// queueAction is what the queue policy decides for a new message.
type queueAction int

const (
	queueAccept      queueAction = iota // room left: append
	queueRejectNew                      // full, DropNewest: refuse the new message
	queueEvictOldest                    // full, DropOldest: remove the oldest, then append
)

// queueDecision is the pure drop policy.
func queueDecision(length, size int, drop DropPolicy) queueAction {
	switch {
	case length < size:
		return queueAccept
	case drop == DropOldest:
		return queueEvictOldest
	}
	return queueRejectNew
}

// queueStore holds queued messages in FIFO order. The offlineQueue
// serialises calls.
type queueStore interface {
	Len() int
	Push(m queuedMessage) error
	Front() (queuedMessage, bool, error)
	PopFront() error
	Close() error
}

// offlineQueue applies the size/drop policy on top of a store.
type offlineQueue struct {
	mu     sync.Mutex
	store  queueStore
	size   int
	drop   DropPolicy
	closed bool
}

// enqueue appends m, applying the drop policy; evicted counts messages
// discarded to make room.
func (q *offlineQueue) enqueue(m queuedMessage) (evicted int, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, ErrClosed
	}
	// A loop, not an if: a file written with a larger size may hold more
	// than size messages.
	for {
		switch queueDecision(q.store.Len(), q.size, q.drop) {
		case queueRejectNew:
			return evicted, fmt.Errorf("%w (%d messages; drop policy %q): message to %q discarded", ErrQueueFull, q.size, q.drop, m.Topic)
		case queueEvictOldest:
			if err := q.store.PopFront(); err != nil {
				return evicted, err
			}
			evicted++
			continue
		}
		return evicted, q.store.Push(m)
	}
}

func (q *offlineQueue) front() (queuedMessage, bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return queuedMessage{}, false, ErrClosed
	}
	return q.store.Front()
}

// remove pops the front message if it is still the one that was sent (a DropOldest
// eviction may have removed it while it was being sent).
func (q *offlineQueue) remove(sent queuedMessage) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	m, ok, err := q.store.Front()
	if err != nil || !ok {
		return err
	}
	if m.ID != sent.ID {
		return nil
	}
	return q.store.PopFront()
}

func (q *offlineQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0
	}
	return q.store.Len()
}

func (q *offlineQueue) close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	return q.store.Close()
}

// memoryStore keeps the queue in a slice.
type memoryStore struct {
	msgs []queuedMessage
	seq  uint64
}

func (s *memoryStore) Len() int { return len(s.msgs) }
func (s *memoryStore) Push(m queuedMessage) error {
	s.seq++
	m.ID = s.seq
	s.msgs = append(s.msgs, m)
	return nil
}
func (s *memoryStore) Close() error    { s.msgs = nil; return nil }
func (s *memoryStore) PopFront() error { s.msgs[0] = queuedMessage{}; s.msgs = s.msgs[1:]; return nil }
func (s *memoryStore) Front() (queuedMessage, bool, error) {
	if len(s.msgs) == 0 {
		return queuedMessage{}, false, nil
	}
	return s.msgs[0], true, nil
}

// boltStore keeps the queue in a bbolt file: one bucket, keys are
// big-endian sequence numbers so iteration order is FIFO order.
type boltStore struct {
	db    *bolt.DB
	path  string
	count int
}

var queueBucket = []byte("offline-queue")

func openBoltStore(path string) (*boltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("%w: queue file %s is in use by another process (only one client may use it)", ErrQueueStorage, path)
		}
		return nil, fmt.Errorf("%w: opening queue file %s: %w", ErrQueueStorage, path, err)
	}
	s := &boltStore{db: db, path: path}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(queueBucket)
		if err != nil {
			return err
		}
		s.count = b.Stats().KeyN
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: queue file %s: %w", ErrQueueStorage, path, err)
	}
	return s, nil
}

func (s *boltStore) Len() int { return s.count }

func (s *boltStore) Push(m queuedMessage) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(queueBucket)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], seq)
		return b.Put(key[:], encodeQueued(m))
	})
	if err != nil {
		return fmt.Errorf("%w: writing %s: %w", ErrQueueStorage, s.path, err)
	}
	s.count++
	return nil
}

func (s *boltStore) Front() (queuedMessage, bool, error) {
	var (
		m       queuedMessage
		found   bool
		corrupt error
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(queueBucket).Cursor()
		k, v := c.First()
		if k == nil {
			return nil
		}
		var err error
		if m, err = decodeQueued(v); err != nil {
			// Drop an undecodable record rather than block the queue forever.
			corrupt = fmt.Errorf("%w: %s: dropped record %x: %w", ErrQueueStorage, s.path, k, err)
			return c.Delete()
		}
		m.ID = binary.BigEndian.Uint64(k)
		found = true
		return nil
	})
	if err != nil {
		return queuedMessage{}, false, fmt.Errorf("%w: reading %s: %w", ErrQueueStorage, s.path, err)
	}
	if corrupt != nil {
		s.count--
		return queuedMessage{}, false, corrupt
	}
	return m, found, nil
}

func (s *boltStore) PopFront() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(queueBucket).Cursor()
		if k, _ := c.First(); k == nil {
			return nil
		}
		return c.Delete()
	})
	if err != nil {
		return fmt.Errorf("%w: deleting from %s: %w", ErrQueueStorage, s.path, err)
	}
	if s.count > 0 {
		s.count--
	}
	return nil
}

func (s *boltStore) Close() error { return s.db.Close() }

// encodeQueued: version(1) qos(1) retain(1) topicLen(2) topic payload.
func encodeQueued(m queuedMessage) []byte {
	b := make([]byte, 0, 5+len(m.Topic)+len(m.Payload))
	retain := byte(0)
	if m.Retain {
		retain = 1
	}
	b = append(b, 1, byte(m.QoS), retain)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Topic)))
	b = append(b, m.Topic...)
	return append(b, m.Payload...)
}

func decodeQueued(b []byte) (queuedMessage, error) {
	if len(b) < 5 || b[0] != 1 {
		return queuedMessage{}, errors.New("corrupt queue record")
	}
	n := int(binary.BigEndian.Uint16(b[3:5]))
	if len(b) < 5+n {
		return queuedMessage{}, errors.New("corrupt queue record (short topic)")
	}
	return queuedMessage{
		QoS:     QoS(b[1]),
		Retain:  b[2] == 1,
		Topic:   string(b[5 : 5+n]),
		Payload: append([]byte(nil), b[5+n:]...),
	}, nil
}
