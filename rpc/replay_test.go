package rpc

import (
	"io"
	"strings"
	"testing"
)

func TestReplayBodyBuffered(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		n      int64
		before func(b *replayBody) // reads or rewinds first
		want   string
		ok     bool
	}{
		{name: "whole body", body: "hello", n: 5, want: "hello", ok: true},
		{name: "empty", body: "", n: 0, want: "", ok: true},
		{name: "after part was streamed", body: "hello", n: 5, before: func(b *replayBody) { b.Read(make([]byte, 2)) }, want: "llo", ok: true},
		{name: "rewound after part was streamed", body: "hello", n: 5, before: func(b *replayBody) { b.Read(make([]byte, 2)); b.rewind() }, want: "hello", ok: true},
		{name: "rewound after a buffered send", body: "hello", n: 5, before: func(b *replayBody) { b.buffered(5); b.rewind() }, want: "hello", ok: true},
		{name: "shorter than announced", body: "hel", n: 5, want: "hel", ok: true},
		{name: "length not known", body: "hello", n: -1},
		{name: "too large to keep", body: "x", n: maxReplay + 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newReplayBody(io.NopCloser(strings.NewReader(tc.body)))
			if tc.before != nil {
				tc.before(b)
			}
			r, ok := b.buffered(tc.n)
			if ok != tc.ok {
				t.Fatalf("ok = %v", ok)
			}
			if !ok {
				return
			}
			got, _ := io.ReadAll(r)
			if string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if !b.rewind() {
				t.Fatal("cannot rewind a kept body")
			}
			again, _ := io.ReadAll(b)
			if string(again) != tc.body {
				t.Fatalf("after rewind %q, want the whole body %q", again, tc.body)
			}
		})
	}
}
