package wal

// The log's codec is unexported; wal's black-box tests and fuzz targets
// (package wal_test) reach it under its old exported names.

var (
	AppendRecord        = appendRecord
	DecodeRecord        = decodeRecord
	Scan                = scan
	AppendTx            = appendTx
	DecodeTx            = decodeTx
	CheckTx             = checkTx
	BorrowTx            = borrowTx
	AppendSegmentHeader = appendSegmentHeader
	DecodeSegmentHeader = decodeSegmentHeader
	AppendItem          = appendItem
	DecodeItem          = decodeItem
	ReadSnapshotBorrow  = readSnapshot
	SnapshotCount       = snapshotCount
)

// ReadSnapshot is readSnapshot with values of their own.
func ReadSnapshot(b []byte, max int, fn func(*Item) error) (int64, error) {
	return readSnapshot(b, max, fn, false)
}

type ScanResult = scanResult

const (
	RecordHeaderSize        = recordHeaderSize
	SegmentHeaderSize       = segmentHeaderSize
	SegmentVersion          = segmentVersion
	SegmentVersionNoTrailer = segmentVersionNoTrailer

	TypeTx       = typeTx
	TypeItem     = typeItem
	TypeSnapshot = typeSnapshot
)
