package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// git runs git in dir and returns its output, trimmed.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// buildIn compiles ./cmd/livekv of the module in root with the build
// flags given.
func buildIn(t *testing.T, root string, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "livekv")
	cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", bin, "./cmd/livekv")...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// TestVersion: a build that records VCS information (-buildvcs=true, in
// a git checkout) prints the commit it was built from; one without
// (-buildvcs=false) says the revision is unknown.
func TestVersion(t *testing.T) {
	root := git(t, ".", "rev-parse", "--show-toplevel")
	head := git(t, root, "rev-parse", "HEAD")
	vcsRoot := root
	if st, err := os.Stat(filepath.Join(root, ".git")); err != nil || !st.IsDir() {
		// A linked worktree, whose .git is a file: the go command finds
		// no repository there (it looks for a .git folder) and records
		// nothing. Build the same commit from a clone instead.
		vcsRoot = filepath.Join(t.TempDir(), "clone")
		git(t, root, "clone", "--quiet", "--shared", "--no-checkout", root, vcsRoot)
		git(t, vcsRoot, "-c", "advice.detachedHead=false", "checkout", "--quiet", head)
	}

	bin := buildIn(t, vcsRoot, "-buildvcs=true")
	out, err := exec.Command(bin, "version").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Regexp(t, `^livekv \S+\nrevision `+head+`( \(modified\))? \d{4}-\d\d-\d\dT\S+Z\ngo1\.`, string(out))
	out, err = exec.Command(bin, "version", "-o", "json").Output()
	require.NoError(t, err)
	var v map[string]string
	require.NoError(t, json.Unmarshal(out, &v))
	require.Equal(t, head, v["revision"])
	require.NotEmpty(t, v["time"])

	bin = buildIn(t, root, "-buildvcs=false")
	out, err = exec.Command(bin, "version").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Regexp(t, `^livekv \S+\nrevision unknown \(built without VCS information\)\ngo1\.`, string(out))
	out, err = exec.Command(bin, "version", "-o", "json").Output()
	require.NoError(t, err)
	v = nil
	require.NoError(t, json.Unmarshal(out, &v))
	require.NotContains(t, v, "revision")
	require.Contains(t, v["go"], "go1.")
}
