package main

import (
	"strings"
	"testing"

	"github.com/livekv/livekv/internal/leaktest"
)

func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	want := `revision 1: put user:1 {"name":"Ada"}
revision 2: patch user:1 {"name":"Ada","role":"admin"}
revision 4: delete user:1 
`
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestMain(m *testing.M) { leaktest.Main(m) }
