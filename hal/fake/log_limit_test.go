package fake

import (
	"context"
	"testing"
	"time"
)

// A bounded log keeps the newest ops, keeps counting Seq, and Wait still
// finds ops logged after a mark.
func TestLogLimit(t *testing.T) {
	l := newLog(RealClock{}, 10)
	for i := 0; i < 95; i++ {
		l.add(Op{Kind: OpSet, Name: "p", Detail: string(rune('a' + i%26))})
	}
	ops := l.Ops()
	if len(ops) < 10 || len(ops) > 20 {
		t.Fatalf("kept %d ops, want between 10 and 20", len(ops))
	}
	if last := ops[len(ops)-1].Seq; last != 94 || l.Len() != 95 {
		t.Fatalf("last Seq %d, Len %d; want 94, 95", last, l.Len())
	}
	for i := 1; i < len(ops); i++ {
		if ops[i].Seq != ops[i-1].Seq+1 {
			t.Fatalf("kept ops not contiguous: %v", ops)
		}
	}
	mark := l.Len()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan Op, 1)
	go func() {
		op, _ := l.Wait(ctx, func(o Op) bool { return o.Seq >= mark && o.Name == "q" })
		done <- op
	}()
	for i := 0; i < 50; i++ { // pushes the waiter's position out of the kept window
		l.add(Op{Kind: OpSet, Name: "p"})
	}
	l.add(Op{Kind: OpSet, Name: "q"})
	if op := <-done; op.Name != "q" || op.Seq != 145 {
		t.Fatalf("Wait returned %v", op)
	}
}
