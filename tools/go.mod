// The Go tools that make runs (staticcheck, and benchstat to compare
// benchmark runs), pinned here rather than in ../go.mod: staticcheck
// v0.8.2 needs Go 1.26, so a tool directive in the library's go.mod would
// raise the Go version that every program importing livekv needs, and put
// x/tools, x/mod and x/sync into those programs' module graphs. Run one
// with go tool -modfile=tools/go.mod NAME. No packages live here.
module github.com/livekv/livekv/tools

go 1.26.0

tool (
	golang.org/x/perf/cmd/benchstat
	honnef.co/go/tools/cmd/staticcheck
)

require (
	github.com/BurntSushi/toml v1.4.1-0.20240526193622-a339e1f7089c // indirect
	github.com/aclements/go-moremath v0.0.0-20210112150236-f10218a38794 // indirect
	golang.org/x/exp/typeparams v0.0.0-20231108232855-2478ac86f678 // indirect
	golang.org/x/mod v0.41.0 // indirect
	golang.org/x/perf v0.0.0-20260908200009-22c9c6c9d4da // indirect
	golang.org/x/sync v0.23.0 // indirect
	golang.org/x/tools v0.51.0 // indirect
	honnef.co/go/tools v0.8.2 // indirect
)
