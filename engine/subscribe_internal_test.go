package engine

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A commit becomes visible (db.committed) a moment before its batch reaches
// the broker. A subscription from now made in that moment starts after the
// visible revision, not after the broker's newest: it never gets the
// events of a change that Revision already showed.
func TestSubscribe_FromNowAheadOfTheBroker(t *testing.T) {
	db, err := Open("", &Options{SweepInterval: -1})
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	_, err = db.Set("a", "1", nil)
	require.NoError(t, err)
	db.committed.Store(2) // revision 2 visible, its batch not yet handed over
	s, err := db.Subscribe([]string{"*"}, nil)
	db.committed.Store(1)
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, int64(3), s.Position().Revision)
}
