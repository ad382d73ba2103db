package handlers

import (
	"context"
	"testing"
	"time"
)

// One client's password checks go one at a time; another client's are not
// held up by them; nothing is kept once they are done.
func TestTurns(t *testing.T) {
	var tr turns
	ctx := context.Background()
	first, err := tr.take(ctx, "203.0.113.7")
	if err != nil {
		t.Fatal(err)
	}
	waiting, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := tr.take(waiting, "203.0.113.7"); err == nil {
		t.Fatal("a second check from the same address ran alongside the first")
	}
	other, err := tr.take(ctx, "198.51.100.1")
	if err != nil {
		t.Fatal(err)
	}
	other()
	done := make(chan struct{})
	go func() {
		second, err := tr.take(ctx, "203.0.113.7")
		if err == nil {
			second()
		}
		close(done)
	}()
	time.Sleep(10 * time.Millisecond)
	first()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("the waiting check never got its turn")
	}
	if len(tr.m) != 0 {
		t.Fatalf("%d turns kept after all were done", len(tr.m))
	}
}
