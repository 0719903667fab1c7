package revision

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// fuzzID is the name the fuzzed objects are stored under.
var fuzzID = objectID{0x12, 0x34, 0x56}

// writeFuzzStore makes an objects directory in dir holding a loose
// object of content loose, and a packfile whose single entry (at offset
// 12, named fuzzID in its index) is entry.
func writeFuzzStore(t *testing.T, dir string, loose, entry []byte) *store {
	t.Helper()
	objects := filepath.Join(dir, "objects")
	hexID := objectID{0xab}.String()
	for _, d := range []string{filepath.Join(objects, hexID[:2]), filepath.Join(objects, "pack")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(objects, hexID[:2], hexID[2:]), loose, 0o644); err != nil {
		t.Fatal(err)
	}
	pack := append([]byte("PACK\x00\x00\x00\x02\x00\x00\x00\x01"), entry...)
	pack = append(pack, make([]byte, 20)...)
	var idx bytes.Buffer
	idx.Write([]byte{0xff, 't', 'O', 'c', 0, 0, 0, 2})
	for i := range 256 {
		n := uint32(0)
		if i >= int(fuzzID[0]) {
			n = 1
		}
		binary.Write(&idx, binary.BigEndian, n)
	}
	idx.Write(fuzzID[:])
	idx.Write(make([]byte, 4))                               // CRC
	binary.Write(&idx, binary.BigEndian, uint32(packHeader)) // offset
	idx.Write(make([]byte, 40))                              // checksums
	for name, b := range map[string][]byte{"pack-x.pack": pack, "pack-x.idx": idx.Bytes()} {
		if err := os.WriteFile(filepath.Join(objects, "pack", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

// FuzzObjects: whatever a loose object or a packfile entry holds (a
// header, zlib data, an OFS_DELTA or REF_DELTA and its delta), reading it
// returns an object or an error, never a panic, a hang or more than the
// bounded memory; a tree or commit read is parsed the same way.
func FuzzObjects(f *testing.F) {
	f.Add(deflate(f, "blob 5\x00hello"), []byte{0x35, 0x78, 0x9c, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x06, 0x2c, 0x02, 0x15})
	f.Add(deflate(f, "tree 30\x00100644 a.yaml\x00"+string(make([]byte, 20))), append([]byte{0x6a, 0x0c}, deflate(f, "\x05\x05\x90\x05")...))
	f.Add(deflate(f, "commit 46\x00tree 0123456789abcdef0123456789abcdef01234567\n"), append(append([]byte{0x75}, objectID{0xab}.String()[:20]...), deflate(f, "\x05\x05\x05hello")...))
	f.Add([]byte("x"), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, loose, entry []byte) {
		s := writeFuzzStore(t, t.TempDir(), loose, entry)
		for _, id := range []objectID{fuzzID, {0xab}} {
			s.budget = maxInflated
			typ, data, err := s.readDepth(id, 0)
			if err != nil {
				continue
			}
			if int64(len(data)) > maxObjectSize {
				t.Fatalf("%d bytes read", len(data))
			}
			switch typ {
			case "tree":
				treeEntry(data, "a.yaml")
			case "commit":
				commitTree(data)
			}
			s.read(id)
		}
		s.blobAt(fuzzID, "deploy/a.yaml")
	})
}

// FuzzDelta: applying any delta to any base gives a result of the size
// the delta declares, within the limit, or an error.
func FuzzDelta(f *testing.F) {
	f.Add([]byte("hello"), []byte{0x05, 0x06, 0x90, 0x05, 0x01, '!'})
	f.Add([]byte(""), []byte{0x00, 0x03, 0x03, 'a', 'b', 'c'})
	f.Add([]byte("abc"), []byte{0x03, 0xff, 0xff, 0x03, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte("abc"), []byte{0x03, 0x80, 0x80, 0x04, 0x00})
	f.Fuzz(func(t *testing.T, base, delta []byte) {
		const limit = 1 << 20
		out, err := applyDelta(base, delta, limit)
		if err == nil && len(out) > limit {
			t.Fatalf("%d bytes, over the limit", len(out))
		}
	})
}

// TestApplyDelta: copies (offset and size bytes chosen by the command's
// bits, size 0 meaning 0x10000) and inserts.
func TestApplyDelta(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 0x10000)
	cases := []struct {
		name        string
		base, delta []byte
		want        string
		wantErr     bool
	}{
		{"insert", nil, []byte{0, 3, 3, 'a', 'b', 'c'}, "abc", false},
		{"copy with offset", []byte("hello world"), []byte{11, 5, 0x91, 6, 5}, "world", false},
		{"copy and insert", []byte("hello"), []byte{5, 6, 0x90, 5, 1, '!'}, "hello!", false},
		{"copy of size 0x10000", big, []byte{0x80, 0x80, 0x04, 0x80, 0x80, 0x04, 0x80}, string(big), false},
		{"base of another size", []byte("hi"), []byte{5, 2, 0x90, 2}, "", true},
		{"copy out of the base", []byte("hello"), []byte{5, 6, 0x90, 6}, "", true},
		{"result shorter than declared", []byte("hello"), []byte{5, 9, 0x90, 5}, "", true},
		{"instruction 0", []byte("hello"), []byte{5, 1, 0}, "", true},
		{"insert past the end", nil, []byte{0, 3, 5, 'a'}, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := applyDelta(c.base, c.delta, maxObjectSize)
			if (err != nil) != c.wantErr || (err == nil && string(got) != c.want) {
				t.Fatalf("applyDelta = %q, %v", got, err)
			}
		})
	}
}
