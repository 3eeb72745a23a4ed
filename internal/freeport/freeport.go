// Package freeport picks loopback ports for test clusters whose processes
// restart on the ports they had. A port the kernel hands out for ":0" lies
// in its ephemeral range, where any outgoing connection on the machine may
// be given it while its node is down, and the restart then fails with
// "address already in use". The ports picked here lie below that range, so
// only another listener can take them.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Addr returns "127.0.0.1:PORT" for a port below the ephemeral range that
// is free right now for both TCP and UDP (gossip listens on both).
func Addr() (string, error) {
	hi := ephemeralStart()
	lo := hi / 2
	for range 500 {
		addr := fmt.Sprintf("127.0.0.1:%d", lo+rand.IntN(hi-lo))
		if free(addr) {
			return addr, nil
		}
	}
	return "", fmt.Errorf("no free loopback port in [%d, %d)", lo, hi)
}

func free(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// ephemeralStart is the first port of the kernel's ephemeral range (Linux;
// elsewhere the IANA range's start).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n >= 2048 {
				return n
			}
		}
	}
	return 49152
}
