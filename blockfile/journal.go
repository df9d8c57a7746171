package blockfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// The journal makes in-place rewrites of the backing file atomic. A batch of
// writes that touches bytes already in the file is first written whole to the
// journal and made durable; only then is it applied in place; then the
// journal is emptied. A journal found non-empty at open is replayed: its
// writes are full images, so applying them again is harmless. A journal
// whose checksum fails was torn before the in-place writes began, so it is
// discarded. Layout (little-endian):
//
//	magic "GZFSJNL1" | inode uint64 | final backing size uint64 | count uint32
//	count × (offset uint64 | length uint32 | bytes) | CRC32 of all before
const journalMagic = "GZFSJNL1"

// extent is one write of a batch.
type extent struct {
	off  int64
	data []byte
}

// encodeJournal serializes a batch.
func encodeJournal(ino uint64, finalSize int64, writes []extent) []byte {
	n := 8 + 8 + 8 + 4 + 4
	for _, w := range writes {
		n += 12 + len(w.data)
	}
	b := make([]byte, 0, n)
	b = append(b, journalMagic...)
	b = binary.LittleEndian.AppendUint64(b, ino)
	b = binary.LittleEndian.AppendUint64(b, uint64(finalSize))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(writes)))
	for _, w := range writes {
		b = binary.LittleEndian.AppendUint64(b, uint64(w.off))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(w.data)))
		b = append(b, w.data...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// errJournalTorn marks a journal that was not completely written.
var errJournalTorn = errors.New("journal incomplete")

// decodeJournal parses a journal made by encodeJournal.
func decodeJournal(b []byte) (ino uint64, finalSize int64, writes []extent, err error) {
	if len(b) < 32 || string(b[:8]) != journalMagic {
		return 0, 0, nil, errJournalTorn
	}
	body := b[:len(b)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return 0, 0, nil, errJournalTorn
	}
	ino = binary.LittleEndian.Uint64(body[8:])
	finalSize = int64(binary.LittleEndian.Uint64(body[16:]))
	count := binary.LittleEndian.Uint32(body[24:])
	rest := body[28:]
	for i := uint32(0); i < count; i++ {
		if len(rest) < 12 {
			return 0, 0, nil, fmt.Errorf("journal entry %d: %w", i, errJournalTorn)
		}
		off := int64(binary.LittleEndian.Uint64(rest))
		n := int(binary.LittleEndian.Uint32(rest[8:]))
		if len(rest) < 12+n || off < 0 {
			return 0, 0, nil, fmt.Errorf("journal entry %d: %w", i, errJournalTorn)
		}
		writes = append(writes, extent{off: off, data: rest[12 : 12+n]})
		rest = rest[12+n:]
	}
	return ino, finalSize, writes, nil
}

// journal is the open journal file of one backing file.
type journal struct {
	path string
	f    *os.File
}

func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	return &journal{path: path, f: f}, nil
}

// commit makes a batch durable in the journal.
func (j *journal) commit(ino uint64, finalSize int64, writes []extent) error {
	b := encodeJournal(ino, finalSize, writes)
	if _, err := j.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := j.f.Truncate(int64(len(b))); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	return nil
}

// retire empties the journal durably once its batch is applied and synced.
func (j *journal) retire() error {
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("retire journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("retire journal: %w", err)
	}
	return nil
}

// pending reads the batch left in the journal, if any. ok is false for an
// empty or torn journal (a torn one was never applied, so it is dropped).
func (j *journal) pending(ino uint64) (finalSize int64, writes []extent, ok bool, err error) {
	b, err := io.ReadAll(io.NewSectionReader(j.f, 0, 1<<40))
	if err != nil {
		return 0, nil, false, fmt.Errorf("read journal: %w", err)
	}
	if len(b) == 0 {
		return 0, nil, false, nil
	}
	jino, size, w, derr := decodeJournal(b)
	if derr != nil || jino != ino {
		return 0, nil, false, nil
	}
	return size, w, true, nil
}

// apply writes a batch in place, sets the final size and syncs.
func applyBatch(fd *os.File, finalSize int64, writes []extent) error {
	for _, w := range writes {
		if _, err := fd.WriteAt(w.data, w.off); err != nil {
			return fmt.Errorf("write at %d: %w", w.off, err)
		}
	}
	if err := fd.Truncate(finalSize); err != nil {
		return fmt.Errorf("set size %d: %w", finalSize, err)
	}
	if err := fd.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	return nil
}

func (j *journal) close() error { return j.f.Close() }
