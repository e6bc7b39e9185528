package pattern

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dlclark/regexp2"
	"github.com/stretchr/testify/require"
)

// TestRegex_SpuriousTimeout: a try that runs out of time (as when regexp2's
// clock jumps on a loaded machine) is made again, and only a match that runs
// out of time twice counts as a timeout.
func TestRegex_SpuriousTimeout(t *testing.T) {
	real := regexMatch
	t.Cleanup(func() { regexMatch = real })
	timeout := errors.New("match timeout")
	p := MustParse(`/^(order|x)/`)

	tries, failFirst := 0, 1
	regexMatch = func(re *regexp2.Regexp, r []rune) (bool, error) {
		tries++
		if tries <= failFirst {
			return false, timeout
		}
		return real(re, r)
	}
	require.True(t, p.Match("order:1"), "a match whose first try ran out of time")
	require.Equal(t, 2, tries)
	require.Zero(t, p.Timeouts())

	tries, failFirst = 0, 2
	require.False(t, p.Match("order:1"), "a match out of time twice")
	require.Equal(t, 2, tries, "no third try")
	require.Equal(t, int64(1), p.Timeouts())

	tries, failFirst = 0, 0
	require.True(t, p.Match("order:1"))
	require.Equal(t, 1, tries, "one try when it does not run out of time")
}

// TestRegex_TimeoutNotRetried: a try that has used its whole timeout is not
// made again, so a runaway match costs one timeout; TryMatch tells "could
// not decide" from "no".
func TestRegex_TimeoutNotRetried(t *testing.T) {
	real := regexMatch
	t.Cleanup(func() { regexMatch = real })
	p, err := ParseWith(`/^(order|x)/`, &Options{MatchTimeout: time.Millisecond})
	require.NoError(t, err)
	tries := 0
	regexMatch = func(re *regexp2.Regexp, r []rune) (bool, error) {
		tries++
		time.Sleep(2 * time.Millisecond)
		return false, errors.New("match timeout")
	}
	ok, err := p.TryMatch("order:1")
	require.False(t, ok)
	require.ErrorIs(t, err, ErrTimeout)
	require.Equal(t, 1, tries)
	require.Equal(t, int64(1), p.Timeouts())

	regexMatch = real
	ok, err = p.TryMatch("order:1")
	require.True(t, ok)
	require.NoError(t, err)
	ok, err = MustParse("user:*").TryMatch("order:1")
	require.False(t, ok)
	require.NoError(t, err)
}

// TestRegex_OutsidePrefixNotRun: a key without a regex's literal prefix
// cannot match, so the regex is not run at all, however it would backtrack.
func TestRegex_OutsidePrefixNotRun(t *testing.T) {
	real := regexMatch
	t.Cleanup(func() { regexMatch = real })
	runs := 0
	regexMatch = func(re *regexp2.Regexp, r []rune) (bool, error) {
		runs++
		return real(re, r)
	}
	p := MustParse(`/^user:(a+)+$/`)
	ok, err := p.TryMatch("x:" + strings.Repeat("a", 28) + "!")
	require.False(t, ok)
	require.NoError(t, err)
	require.Zero(t, runs, "outside the prefix")
	require.True(t, p.Match("user:aaa"))
	require.Equal(t, 1, runs)
	runs = 0
	require.False(t, MustParse(`/^(a+)+$/`).Match("x:1"), "no prefix: run")
	require.Equal(t, 1, runs)
}

// TestRegex_LiteralPrefixNeedsNoRegex: a regex that only says "starts
// with this literal", as an access pattern such as ^todo: does, is
// decided by a prefix test: it never runs out of time, however loaded the
// machine. Any other regex still runs.
func TestRegex_LiteralPrefixNeedsNoRegex(t *testing.T) {
	real := regexMatch
	t.Cleanup(func() { regexMatch = real })
	regexMatch = func(re *regexp2.Regexp, r []rune) (bool, error) {
		return false, errors.New("match timeout")
	}
	for src, keys := range map[string][2]string{
		`^todo:`:      {"todo:1", "chat:1"},
		`/^todo:/`:    {"todo:", "xtodo:"},
		`/^a\.b\-c/`:  {"a.b-c/1", "axb-c"},
		`/^room 1~x/`: {"room 1~x", "room 1~"},
	} {
		p := MustParse(src)
		ok, err := p.TryMatch(keys[0])
		require.NoError(t, err, src)
		require.True(t, ok, "%s matches %q", src, keys[0])
		ok, err = p.TryMatch(keys[1])
		require.NoError(t, err, src)
		require.False(t, ok, "%s does not match %q", src, keys[1])
	}
	for _, src := range []string{`^todo:$`, `^todo:x?`, `^todo:.`, `^(?i)todo:`, `^todo:[0-9]`, `/^a|b/`} {
		_, err := MustParse(src).TryMatch("todo:x")
		require.ErrorIs(t, err, ErrTimeout, "%s runs the regex", src)
	}
}

// TestMatchAnyTwice: a pattern that could not decide, having used its
// whole timeout (as when the goroutine waited rather than matched), is
// tried once more by MatchAnyTwice and not by MatchAny; one that cannot
// decide twice is returned as undecided, after two tries and no more.
func TestMatchAnyTwice(t *testing.T) {
	real := regexMatch
	t.Cleanup(func() { regexMatch = real })
	p, err := ParseWith(`/^(order|x)/`, &Options{MatchTimeout: time.Millisecond})
	require.NoError(t, err)
	pats := []*Pattern{MustParse("user:*"), p}
	tries, fail := 0, 1
	regexMatch = func(re *regexp2.Regexp, r []rune) (bool, error) {
		tries++
		time.Sleep(2 * time.Millisecond) // the whole timeout used
		if tries <= fail {
			return false, errors.New("match timeout")
		}
		return real(re, r)
	}
	ok, undecided := MatchAny(pats, "order:1")
	require.False(t, ok)
	require.Same(t, p, undecided, "MatchAny: one try")
	require.Equal(t, 1, tries)

	tries = 0
	ok, undecided = MatchAnyTwice(pats, "order:1")
	require.True(t, ok, "the second try decides")
	require.Nil(t, undecided)
	require.Equal(t, 2, tries)

	tries, fail = 0, 2
	ok, undecided = MatchAnyTwice(pats, "order:1")
	require.False(t, ok)
	require.Same(t, p, undecided)
	require.Equal(t, 2, tries, "no third try")

	tries, fail = 0, 0
	ok, undecided = MatchAnyTwice(pats, "user:1")
	require.True(t, ok)
	require.Nil(t, undecided)
	require.Zero(t, tries, "the glob matches first")
}
