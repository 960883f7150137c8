// Package compat runs real Go Kafka clients (franz-go with kadm, and Sarama),
// unmodified, against a running Strom broker named by STROM_BOOTSTRAP.
//
// The records produced mirror compat/clients/python/scenario.py: 100 records
// over 3 partitions with keys, headers (a repeated key, an empty value),
// a null and an empty value, a null key, binary tails and explicit CreateTime
// timestamps 10 ms apart, so that offsets-for-times has known answers.
package compat

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	partitions  = 3
	recordCount = 100

	// Indexes of records with special content.
	nullValue           = 7
	emptyValue          = 8
	nullKey             = 11
	duplicateHeaderKeys = 12
	emptyHeaderValue    = 16

	timeout = 20 * time.Second
)

// codecs every Kafka broker accepts in a v2 record batch.
var codecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

var bootstrapAddr string

func TestMain(m *testing.M) {
	bootstrapAddr = strings.TrimSpace(os.Getenv("STROM_BOOTSTRAP"))
	if bootstrapAddr == "" {
		fmt.Fprintln(os.Stderr, "STROM_BOOTSTRAP is not set: start `strom serve` and export STROM_BOOTSTRAP=HOST:PORT")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func seeds() []string { return strings.Split(bootstrapAddr, ",") }

func uniqueName(prefix string) string {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + "-" + hex.EncodeToString(b)
}

type header struct {
	key   string
	value []byte
}

// rec is a record as produced, and as it must be read back.
type rec struct {
	partition int32
	key       []byte
	value     []byte
	headers   []header
	tsMillis  int64
}

// consumed is a record as a client read it back, normalised across clients.
type consumed struct {
	rec
	offset int64
}

// makeRecords builds recordCount records spread round-robin over the
// partitions; record i has timestamp base + 10*i.
func makeRecords(baseMillis int64) []rec {
	out := make([]rec, 0, recordCount)
	for i := 0; i < recordCount; i++ {
		key := []byte(fmt.Sprintf("key-%03d", i))
		// Repetitive text compresses; the binary tail checks byte fidelity.
		value := bytes.Repeat([]byte(fmt.Sprintf("value-%03d ", i)), 1+i%7)
		for j := 0; j < i%13; j++ {
			value = append(value, byte((i*7+j)%256))
		}
		var hs []header
		if i%4 == 0 {
			hs = []header{{"source", []byte("strom-compat")}, {"seq", []byte(fmt.Sprint(i))}}
		}
		switch i {
		case nullValue:
			value = nil
		case emptyValue:
			value = []byte{}
		case nullKey:
			key = nil
		case duplicateHeaderKeys:
			hs = []header{{"dup", []byte("first")}, {"dup", []byte("second")}, {"other", []byte{0x00, 0xff}}}
		case emptyHeaderValue:
			hs = []header{{"empty", []byte{}}}
		}
		out = append(out, rec{
			partition: int32(i % partitions),
			key:       key,
			value:     value,
			headers:   hs,
			tsMillis:  baseMillis + 10*int64(i),
		})
	}
	return out
}

// pastBase is a fixed point an hour in the past: clear of any retention
// check, and a realistic epoch-millis value.
func pastBase() int64 { return time.Now().Add(-time.Hour).UnixMilli() }

func byPartition[T interface{ part() int32 }](rs []T) map[int32][]T {
	out := map[int32][]T{}
	for _, r := range rs {
		out[r.part()] = append(out[r.part()], r)
	}
	return out
}

func (r rec) part() int32 { return r.partition }

// expectedOffsets is the offset each record must get in a fresh topic, in
// produce order.
func expectedOffsets(rs []rec) []int64 {
	next := map[int32]int64{}
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = next[r.partition]
		next[r.partition]++
	}
	return out
}

// sameBytes compares two byte slices including null-ness: a null key or
// value must not come back as an empty one, nor the reverse.
func sameBytes(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

func showBytes(b []byte) string {
	if b == nil {
		return "<null>"
	}
	return fmt.Sprintf("%q", b)
}

func showHeaders(hs []header) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = h.key + "=" + fmt.Sprintf("%q", h.value)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func sameHeaders(a, b []header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		// Header values are compared by content: Kafka has no null header
		// value in this scenario, and clients differ on nil vs empty.
		if a[i].key != b[i].key || !bytes.Equal(a[i].value, b[i].value) {
			return false
		}
	}
	return true
}

// checkPartitions asserts every partition holds exactly its records, at
// offsets firstOffset..firstOffset+n-1, in produce order.
func checkPartitions(t *testing.T, want []rec, got []consumed) {
	t.Helper()
	checkPartitionsFrom(t, want, got, map[int32]int64{})
}

// checkPartitionsFrom is checkPartitions where partition p's first record
// is expected at offset first[p] and want holds only the records from there.
func checkPartitionsFrom(t *testing.T, want []rec, got []consumed, first map[int32]int64) {
	t.Helper()
	wantP := byPartition(want)
	gotP := map[int32][]consumed{}
	for _, c := range got {
		gotP[c.partition] = append(gotP[c.partition], c)
	}
	for p := range gotP {
		if _, ok := wantP[p]; !ok {
			t.Errorf("read %d records from partition %d, which should have none", len(gotP[p]), p)
		}
	}
	for p, ws := range wantP {
		gs := gotP[p]
		if len(gs) != len(ws) {
			t.Errorf("partition %d: read %d records, want %d", p, len(gs), len(ws))
		}
		for i := 0; i < len(gs) && i < len(ws); i++ {
			g, w := gs[i], ws[i]
			where := fmt.Sprintf("partition %d record %d (offset %d)", p, i, g.offset)
			if g.offset != first[p]+int64(i) {
				t.Errorf("%s: offset %d, want %d", where, g.offset, first[p]+int64(i))
			}
			if !sameBytes(g.key, w.key) {
				t.Errorf("%s: key %s, want %s", where, showBytes(g.key), showBytes(w.key))
			}
			if !sameBytes(g.value, w.value) {
				t.Errorf("%s: value %s, want %s", where, showBytes(g.value), showBytes(w.value))
			}
			if !sameHeaders(g.headers, w.headers) {
				t.Errorf("%s: headers %s, want %s", where, showHeaders(g.headers), showHeaders(w.headers))
			}
			if g.tsMillis != w.tsMillis {
				t.Errorf("%s: timestamp %d, want %d", where, g.tsMillis, w.tsMillis)
			}
		}
	}
}

// offsetForTime is what ListOffsets by timestamp must answer: the first
// offset in the partition whose timestamp is >= ts, or -1 when none is.
func offsetForTime(rs []rec, partition int32, ts int64) (offset int64, recTs int64) {
	var o int64
	for _, r := range rs {
		if r.partition != partition {
			continue
		}
		if r.tsMillis >= ts {
			return o, r.tsMillis
		}
		o++
	}
	return -1, -1
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	began := time.Now()
	deadline := began.Add(timeout)
	var last string
	for {
		ok, detail := cond()
		if ok {
			if waited := time.Since(began); waited > time.Second {
				t.Logf("waited %s for %s", waited.Round(time.Millisecond), what)
			}
			return
		}
		last = detail
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// --- I: the idempotent producer --------------------------------------------

// idempotentPerPartition records go to each partition, interleaved, in small
// batches so that several are in flight at once.
const idempotentPerPartition = 200

// idempotentRecords: record j of partition p has key k-p-j and value
// idem-p-j, so any duplicate or reordering shows in what is read back.
func idempotentRecords(baseMillis int64) []rec {
	out := make([]rec, 0, partitions*idempotentPerPartition)
	for i := 0; i < partitions*idempotentPerPartition; i++ {
		p, j := i%partitions, i/partitions
		out = append(out, rec{
			partition: int32(p),
			key:       []byte(fmt.Sprintf("k-%d-%04d", p, j)),
			value:     []byte(fmt.Sprintf("idem-p%d-%04d", p, j)),
			tsMillis:  baseMillis + int64(i),
		})
	}
	return out
}

// checkOnceInOrder: exactly the records produced, the same count, no value
// twice, and in every partition the produce order at contiguous offsets
// from 0.
func checkOnceInOrder(t *testing.T, want []rec, got []consumed) {
	t.Helper()
	seen := map[string]int64{}
	for _, c := range got {
		if o, dup := seen[string(c.value)]; dup {
			t.Errorf("%s read twice: at %d@%d and %d@%d", c.value, c.partition, o, c.partition, c.offset)
		}
		seen[string(c.value)] = c.offset
	}
	if len(got) != len(want) {
		t.Errorf("read %d records, want %d", len(got), len(want))
	}
	checkPartitions(t, want, got)
}

// --- X: transactions -------------------------------------------------------

// One transaction commits txnCommitted records to each of txnPartitions
// partitions, the next aborts txnAborted more. Each partition then holds the
// committed records at 0..C-1, the COMMIT marker at C, the aborted records
// at C+1..C+A and the ABORT marker at C+A+1. Where the client can, each
// transaction also commits a consumer group's offset of partition 0 of an
// input topic; only the committed one may become the group's offset.
const (
	txnPartitions           = 2
	txnCommitted            = 3
	txnAborted              = 2
	txnEndOffset            = txnCommitted + 1 + txnAborted + 1
	txnGroupOffsetCommitted = 5
	txnGroupOffsetAborted   = 10
)

type txnRead struct {
	partition int32
	offset    int64
	value     string
}

func txnValue(kind string, p int32, i int) []byte {
	return []byte(fmt.Sprintf("%s-p%d-%d", kind, p, i))
}

// txnExpected is what a consumer must read, per partition in offset order.
func txnExpected(readCommitted bool) []txnRead {
	var out []txnRead
	for p := int32(0); p < txnPartitions; p++ {
		for i := 0; i < txnCommitted; i++ {
			out = append(out, txnRead{p, int64(i), string(txnValue("commit", p, i))})
		}
		if !readCommitted {
			for i := 0; i < txnAborted; i++ {
				out = append(out, txnRead{p, int64(txnCommitted + 1 + i), string(txnValue("abort", p, i))})
			}
		}
	}
	return out
}

func checkTxnRead(t *testing.T, got []txnRead, readCommitted bool) {
	t.Helper()
	// Partitions interleave; within one, the order is the log's.
	sort.SliceStable(got, func(i, j int) bool { return got[i].partition < got[j].partition })
	want := txnExpected(readCommitted)
	level := map[bool]string{true: "read_committed", false: "read_uncommitted"}[readCommitted]
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s read %v, want %v", level, got, want)
	}
}
