package main

import "testing"

func TestIncremented(t *testing.T) {
	for _, c := range []struct {
		old   string
		found bool
		want  string
		err   bool
	}{
		{"", false, "1", false},
		{"41", true, "42", false},
		{"-1", true, "0", false},
		{"x", true, "", true},
		{"", true, "", true}, // found but empty is not an integer
	} {
		got, err := incremented(c.old, c.found)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("incremented(%q, %v) = %q, %v; want %q, error %v", c.old, c.found, got, err, c.want, c.err)
		}
	}
}
