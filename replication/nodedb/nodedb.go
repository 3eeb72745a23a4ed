package nodedb

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Alarm is one scheduled alarm.
type Alarm struct {
	ObjectID  string    `json:"id"`
	Class     string    `json:"class"`
	Name      string    `json:"name"`
	Partition int       `json:"partition"`
	At        time.Time `json:"at"`        // when it fires next
	Scheduled time.Time `json:"scheduled"` // the time SetAlarm asked for
	Retry     int       `json:"retry"`     // retries made so far
}

// FiredAlarm names an alarm that ran: its object and the time it was for.
type FiredAlarm struct {
	ObjectID string    `json:"id"`
	At       time.Time `json:"at"`
}

var alarmsBucket = []byte("alarms")

// LocalSchedule is the alarm schedule of a one-node cluster, in a bbolt
// file: each change is fsynced before the call returns. All methods are
// safe to call concurrently.
type LocalSchedule struct {
	db *bolt.DB
}

// OpenLocalSchedule opens (creating) the schedule file at path.
func OpenLocalSchedule(path string) (*LocalSchedule, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open alarm schedule: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(alarmsBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open alarm schedule: %w", err)
	}
	return &LocalSchedule{db: db}, nil
}

// Close closes the file.
func (s *LocalSchedule) Close() error { return s.db.Close() }

// PutAlarm records a, replacing the object's earlier alarm.
func (s *LocalSchedule) PutAlarm(a Alarm) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(alarmsBucket).Put([]byte(a.ObjectID), b)
	})
}

// DeleteAlarm removes the object's alarm, if any.
func (s *LocalSchedule) DeleteAlarm(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(alarmsBucket).Delete([]byte(id))
	})
}

// GetAlarm returns the object's alarm and whether it has one.
func (s *LocalSchedule) GetAlarm(id string) (Alarm, bool, error) {
	var a Alarm
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(alarmsBucket).Get([]byte(id))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &a)
	})
	return a, ok, err
}

// Alarms returns every scheduled alarm.
func (s *LocalSchedule) Alarms() ([]Alarm, error) {
	var out []Alarm
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(alarmsBucket).ForEach(func(_, v []byte) error {
			var a Alarm
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

// ObjectRecord is one entry of the node's object catalog.
type ObjectRecord struct {
	ID        string `json:"id"`
	Class     string `json:"class"`
	Name      string `json:"name"`
	Partition int    `json:"partition"`
}

var (
	objectsBucket = []byte("objects") // class \x00 name -> ObjectRecord
	idsBucket     = []byte("ids")     // object ID -> class \x00 name
	metaBucket    = []byte("meta")
	cleanKey      = []byte("clean")
)

func objectKey(class, name string) []byte {
	return []byte(class + "\x00" + name)
}

// RecordObjects adds objects to the catalog in one transaction.
func (s *LocalSchedule) RecordObjects(rs []ObjectRecord) error {
	if len(rs) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		objs, err := tx.CreateBucketIfNotExists(objectsBucket)
		if err != nil {
			return err
		}
		ids, err := tx.CreateBucketIfNotExists(idsBucket)
		if err != nil {
			return err
		}
		for _, r := range rs {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			k := objectKey(r.Class, r.Name)
			if err := objs.Put(k, b); err != nil {
				return err
			}
			if err := ids.Put([]byte(r.ID), k); err != nil {
				return err
			}
		}
		return nil
	})
}

// HasObject reports whether the catalog holds the object ID.
func (s *LocalSchedule) HasObject(id string) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(idsBucket); b != nil {
			ok = b.Get([]byte(id)) != nil
		}
		return nil
	})
	return ok, err
}

// Clean reports whether the node that last used the catalog closed it
// after writing every entry.
func (s *LocalSchedule) Clean() (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(metaBucket); b != nil {
			ok = string(b.Get(cleanKey)) == "1"
		}
		return nil
	})
	return ok, err
}

// SetClean records whether the catalog is complete.
func (s *LocalSchedule) SetClean(clean bool) error {
	v := []byte("0")
	if clean {
		v = []byte("1")
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		return b.Put(cleanKey, v)
	})
}

// ListObjects returns up to limit objects of class (all classes if empty)
// whose catalog key sorts after the cursor, and the cursor of the next
// page ("" at the end).
func (s *LocalSchedule) ListObjects(class, after string, limit int) ([]ObjectRecord, string, error) {
	var out []ObjectRecord
	next := ""
	err := s.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(objectsBucket)
		if bk == nil {
			return nil
		}
		prefix := []byte{}
		if class != "" {
			prefix = []byte(class + "\x00")
		}
		c := bk.Cursor()
		var k, v []byte
		if after != "" {
			k, v = c.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, v = c.Next()
			}
		} else {
			k, v = c.Seek(prefix)
		}
		for ; k != nil && bytesHasPrefix(k, prefix); k, v = c.Next() {
			if len(out) == limit {
				next = string(out[len(out)-1].Class + "\x00" + out[len(out)-1].Name)
				return nil
			}
			var r ObjectRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, next, err
}

func bytesHasPrefix(b, p []byte) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == string(p)
}

// ForgetPartition removes the catalog entries of partition p.
func (s *LocalSchedule) ForgetPartition(p int) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		objs, ids := tx.Bucket(objectsBucket), tx.Bucket(idsBucket)
		if objs == nil {
			return nil
		}
		var drop [][]byte
		err := objs.ForEach(func(k, v []byte) error {
			var r ObjectRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if r.Partition == p {
				drop = append(drop, append([]byte(nil), k...))
				if ids != nil {
					if err := ids.Delete([]byte(r.ID)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := objs.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
