package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestAddrIsFreeAndBelowTheEphemeralRange(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		addr, err := Addr()
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(addr)
		if p, _ := strconv.Atoi(port); p >= ephemeralStart() || p < 1024 {
			t.Fatalf("port %d outside [1024, %d)", p, ephemeralStart())
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s not free: %v", addr, err)
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("%s not free for UDP: %v", addr, err)
		}
		pc.Close()
		ln.Close()
		seen[addr] = true
	}
	if len(seen) < 10 {
		t.Fatalf("20 picks gave only %d ports", len(seen))
	}
}

func TestAddrSkipsATakenPort(t *testing.T) {
	addr, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if free(addr) {
		t.Fatalf("%s reported free while listened on", addr)
	}
}
