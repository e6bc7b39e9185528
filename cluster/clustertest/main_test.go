package clustertest_test

import (
	"testing"

	"github.com/livekv/livekv/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }
