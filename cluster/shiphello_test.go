package cluster

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/dura-dev/dura/replication/shipping"
)

func TestShippingStreamHello(t *testing.T) {
	recv := shipping.NewReceiver(shipping.ReceiverConfig{})
	cases := []struct {
		name   string
		cfg    Config
		noRecv bool
		hello  []byte
		err    string // "" accepted as n1
	}{
		{name: "plain port, no tokens", hello: shipHello("n1", "")},
		{name: "admin token", cfg: Config{AdminToken: "old,new"}, hello: shipHello("n1", "old,new")},
		{name: "second admin token (rotation)", cfg: Config{AdminToken: "old,new"}, hello: shipHello("n1", "new")},
		{name: "wrong token", cfg: Config{AdminToken: "old,new"}, hello: shipHello("n1", "guess"), err: "token is not valid"},
		{name: "no token", cfg: Config{AdminToken: "old"}, hello: shipHello("n1", ""), err: "token is not valid"},
		{name: "TLS port admits only nodes", cfg: Config{AdminToken: "old", TLS: &tls.Config{}}, hello: shipHello("n1", "")},
		{name: "empty", hello: nil, err: "malformed"},
		{name: "name cut short", hello: []byte{5, 'n'}, err: "malformed"},
		{name: "no name", hello: []byte{0}, err: "malformed"},
		{name: "no node log", noRecv: true, hello: shipHello("n1", ""), err: "no replicas"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{cfg: tc.cfg, recv: recv}
			if tc.noRecv {
				c.recv = nil
			}
			from, err := c.checkShipHello(tc.hello)
			switch {
			case tc.err == "" && (err != nil || from != "n1"):
				t.Fatalf("refused: %q %v", from, err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}
