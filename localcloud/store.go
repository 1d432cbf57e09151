package localcloud

import (
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

var shadowsBucket = []byte("shadows")

// ErrDatabaseLocked is wrapped when another process holds the database.
var ErrDatabaseLocked = errors.New("database is locked by another process")

// ErrDatabaseCorrupt is wrapped when the database file cannot be read.
var ErrDatabaseCorrupt = errors.New("database is corrupt or not a shadow database")

// store persists shadows in bbolt, one key per shadow.
type store struct {
	db   *bolt.DB
	path string
}

// openStore opens (creating if needed) dir/shadows.db. It fails fast when
// another process holds the file.
func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
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
		_, err := tx.CreateBucketIfNotExists(shadowsBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &store{db: db, path: path}, nil
}

func storeKey(k shadow.Key) []byte {
	if k.Name == "" {
		return []byte(k.Thing)
	}
	return []byte(k.Thing + "/" + k.Name)
}

func parseStoreKey(b []byte) shadow.Key {
	thing, name, _ := strings.Cut(string(b), "/")
	return shadow.Key{Thing: thing, Name: name}
}

// load calls fn for every stored shadow. bbolt panics on some kinds of
// page corruption; that is reported as ErrDatabaseCorrupt.
func (s *store) load(fn func(shadow.Key, *shadow.Shadow)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read %s: %w (%v); move the file away to start empty", s.path, ErrDatabaseCorrupt, r)
		}
	}()
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(shadowsBucket)
		if b == nil {
			return fmt.Errorf("read %s: %w (no shadows bucket)", s.path, ErrDatabaseCorrupt)
		}
		return b.ForEach(func(k, v []byte) error {
			sh := new(shadow.Shadow)
			if err := sh.UnmarshalBinary(v); err != nil {
				return fmt.Errorf("read %s: shadow %q: %w: %w", s.path, k, ErrDatabaseCorrupt, err)
			}
			fn(parseStoreKey(k), sh)
			return nil
		})
	})
}

// write stores every changed shadow of batch in one transaction: one
// fsync for the whole group.
func (s *store) write(batch []*outcome) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(shadowsBucket)
		for _, o := range batch {
			if !o.write {
				continue
			}
			var err error
			if o.data == nil {
				err = b.Delete(storeKey(o.key))
			} else {
				err = b.Put(storeKey(o.key), o.data)
			}
			if err != nil {
				return fmt.Errorf("store shadow %s: %w", o.key, err)
			}
		}
		return nil
	})
}

func (s *store) close() error { return s.db.Close() }
