//go:build !purego

#include "textflag.h"

// func prefetch(es *[scanBatch]*entry, n int)
//
// An entry's first 64 bytes start anywhere in a line, so both the line of
// its start and the next one are fetched. PREFETCHT0 does not fault, so a
// nil entry is harmless.
TEXT ·prefetch(SB), NOSPLIT, $0-16
	MOVQ es+0(FP), SI
	MOVQ n+8(FP), CX
	TESTQ CX, CX
	JEQ done
loop:
	MOVQ (SI), AX
	PREFETCHT0 (AX)
	PREFETCHT0 63(AX)
	ADDQ $8, SI
	DECQ CX
	JNZ loop
done:
	RET

// func prefetchLine(p unsafe.Pointer)
TEXT ·prefetchLine(SB), NOSPLIT, $0-8
	MOVQ p+0(FP), AX
	PREFETCHT0 (AX)
	RET
