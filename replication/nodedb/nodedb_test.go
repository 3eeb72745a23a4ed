package nodedb

import (
	"path/filepath"
	"testing"
	"time"
)

func TestLocalScheduleSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alarms.db")
	s, err := OpenLocalSchedule(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(time.Now().UnixMilli() + 5000)
	for _, id := range []string{"a", "b"} {
		if err := s.PutAlarm(Alarm{ObjectID: id, Class: "db", Name: id, At: at, Scheduled: at}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteAlarm("b"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenLocalSchedule(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all, err := s.Alarms()
	if err != nil || len(all) != 1 || all[0].ObjectID != "a" || !all[0].At.Equal(at) {
		t.Fatalf("after reopen: %+v %v", all, err)
	}
	if _, ok, _ := s.GetAlarm("b"); ok {
		t.Fatal("deleted alarm came back")
	}
}
