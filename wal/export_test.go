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
	AppendSegmentHeader = appendSegmentHeader
	DecodeSegmentHeader = decodeSegmentHeader
	AppendItem          = appendItem
	DecodeItem          = decodeItem
	ReadSnapshot        = readSnapshot
	SnapshotCount       = snapshotCount
)

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
