package localcloud

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pinshadow/pinshadow/localcloud/shadow"
)

// DBFile is the name of the shadow database inside Options.DataDir.
const DBFile = "shadows.db"

// The database holds a snapshot (one key per shadow) and a journal of the
// shadows written since the snapshot, keyed by an increasing sequence
// number. Commits append to the journal: sequential keys dirty only the
// right edge of its B+tree, so a group commit writes a few pages instead of
// one random leaf per updated shadow (cloudbench, 1,000 shadows at
// saturation: 58 MB/s of writes with a Put per shadow, 12 MB/s with the
// journal). When the journal is long enough, a commit also folds the
// latest version of every journaled shadow into the snapshot and drops the
// journal.
var (
	snapshotBucket = []byte("shadows")
	journalBucket  = []byte("journal")
)

// defaultCompactAfter is the journal length that triggers folding it into
// the snapshot.
const defaultCompactAfter = 50000

// Journal record operations.
const (
	recPut    = 'p'
	recDelete = 'd'
)

// ErrDatabaseLocked is wrapped when another process holds the database.
var ErrDatabaseLocked = errors.New("database is locked by another process")

// ErrDatabaseCorrupt is wrapped when the database file cannot be read.
var ErrDatabaseCorrupt = errors.New("database is corrupt or not a shadow database")

// store persists shadows in bbolt. It is used by one goroutine at a time
// (loading before start, then the committer).
type store struct {
	db           *bolt.DB
	path         string
	compactAfter int

	seq     uint64            // last journal key
	entries int               // journal length
	pending map[string][]byte // latest journaled data per store key; nil value = deleted
}

// openStore opens (creating if needed) dir/shadows.db. It fails fast when
// another process holds the file.
func openStore(dir string, compactAfter int) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if compactAfter <= 0 {
		compactAfter = defaultCompactAfter
	}
	path := filepath.Join(dir, DBFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        500 * time.Millisecond,
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
	})
	switch {
	case errors.Is(err, bolt.ErrTimeout):
		return nil, fmt.Errorf("open %s: %w (is another 'agent cloud' using --data %s?)", path, ErrDatabaseLocked, dir)
	case errors.Is(err, bolt.ErrInvalid), errors.Is(err, bolt.ErrChecksum), errors.Is(err, bolt.ErrVersionMismatch),
		err != nil && strings.Contains(err.Error(), "file size too small"):
		return nil, fmt.Errorf("open %s: %w (%v); move the file away to start empty", path, ErrDatabaseCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{snapshotBucket, journalBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &store{db: db, path: path, compactAfter: compactAfter, pending: map[string][]byte{}}, nil
}

func storeKey(k shadow.Key) string {
	if k.Name == "" {
		return k.Thing
	}
	return k.Thing + "/" + k.Name
}

func parseStoreKey(b string) shadow.Key {
	thing, name, _ := strings.Cut(b, "/")
	return shadow.Key{Thing: thing, Name: name}
}

func encodeRecord(key string, data []byte) []byte {
	op := byte(recPut)
	if data == nil {
		op = recDelete
	}
	rec := make([]byte, 0, 1+binary.MaxVarintLen64+len(key)+len(data))
	rec = append(rec, op)
	rec = binary.AppendUvarint(rec, uint64(len(key)))
	rec = append(rec, key...)
	return append(rec, data...)
}

func decodeRecord(rec []byte) (key string, data []byte, err error) {
	if len(rec) < 2 || (rec[0] != recPut && rec[0] != recDelete) {
		return "", nil, errors.New("bad journal record")
	}
	n, w := binary.Uvarint(rec[1:])
	if w <= 0 || uint64(len(rec)-1-w) < n {
		return "", nil, errors.New("bad journal record length")
	}
	key = string(rec[1+w : 1+w+int(n)])
	if rec[0] == recPut {
		data = rec[1+w+int(n):]
	}
	return key, data, nil
}

// load calls fn for every stored shadow: the snapshot with the journal
// replayed over it. bbolt panics on some kinds of page corruption; that is
// reported as ErrDatabaseCorrupt.
func (s *store) load(fn func(shadow.Key, *shadow.Shadow)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read %s: %w (%v); move the file away to start empty", s.path, ErrDatabaseCorrupt, r)
		}
	}()
	corrupt := func(what string, k []byte, e error) error {
		return fmt.Errorf("read %s: %s %q: %w: %w; move the file away to start empty", s.path, what, k, ErrDatabaseCorrupt, e)
	}
	all := map[string][]byte{}
	err = s.db.View(func(tx *bolt.Tx) error {
		snap, journal := tx.Bucket(snapshotBucket), tx.Bucket(journalBucket)
		if snap == nil || journal == nil {
			return fmt.Errorf("read %s: %w (buckets missing)", s.path, ErrDatabaseCorrupt)
		}
		// Values live in the mmap only during the transaction: copy.
		if err := snap.ForEach(func(k, v []byte) error {
			all[string(k)] = append([]byte(nil), v...)
			return nil
		}); err != nil {
			return err
		}
		return journal.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return corrupt("journal key", k, errors.New("not a sequence number"))
			}
			key, data, err := decodeRecord(v)
			if err != nil {
				return corrupt("journal entry", k, err)
			}
			if data != nil {
				data = append([]byte(nil), data...)
			}
			all[key] = data
			s.pending[key] = data
			s.seq = binary.BigEndian.Uint64(k)
			s.entries++
			return nil
		})
	})
	if err != nil {
		return err
	}
	for k, v := range all {
		if v == nil {
			continue
		}
		sh := new(shadow.Shadow)
		if err := sh.UnmarshalBinary(v); err != nil {
			return corrupt("shadow", []byte(k), err)
		}
		fn(parseStoreKey(k), sh)
	}
	return nil
}

// write stores every changed shadow of batch in one transaction: one
// fsync for the whole group.
func (s *store) write(batch []*outcome) error {
	seq, entries := s.seq, s.entries
	var written []*outcome
	err := s.db.Update(func(tx *bolt.Tx) error {
		journal := tx.Bucket(journalBucket)
		journal.FillPercent = 1 // append-only: fill pages completely
		var k [8]byte
		for _, o := range batch {
			if !o.write {
				continue
			}
			seq++
			entries++
			binary.BigEndian.PutUint64(k[:], seq)
			if err := journal.Put(k[:], encodeRecord(storeKey(o.key), o.data)); err != nil {
				return fmt.Errorf("journal shadow %s: %w", o.key, err)
			}
			written = append(written, o)
		}
		if entries >= s.compactAfter {
			return s.compact(tx, written)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.seq, s.entries = seq, entries
	if entries >= s.compactAfter {
		clear(s.pending)
		s.entries = 0
		return nil
	}
	for _, o := range written {
		s.pending[storeKey(o.key)] = o.data
	}
	return nil
}

// compact folds the journal (pending plus this transaction's records) into
// the snapshot and empties the journal, inside tx.
func (s *store) compact(tx *bolt.Tx, written []*outcome) error {
	latest := make(map[string][]byte, len(s.pending)+len(written))
	for k, v := range s.pending {
		latest[k] = v
	}
	for _, o := range written {
		latest[storeKey(o.key)] = o.data
	}
	snap := tx.Bucket(snapshotBucket)
	for k, v := range latest {
		var err error
		if v == nil {
			err = snap.Delete([]byte(k))
		} else {
			err = snap.Put([]byte(k), v)
		}
		if err != nil {
			return fmt.Errorf("compact shadow %s: %w", k, err)
		}
	}
	if err := tx.DeleteBucket(journalBucket); err != nil {
		return fmt.Errorf("compact journal: %w", err)
	}
	if _, err := tx.CreateBucket(journalBucket); err != nil {
		return fmt.Errorf("compact journal: %w", err)
	}
	return nil
}

func (s *store) close() error { return s.db.Close() }
