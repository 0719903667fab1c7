package revision

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// This file reads git's object store (loose objects and packfiles with
// their version 2 indexes, deltas included) far enough to find the blob a
// path names in a commit's tree. Everything read is bounded: an object's
// size, a delta chain's depth, the bytes inflated for one lookup, a tree's
// depth; each object read is checked against its name (its SHA-1), so a
// corrupt store is an error, never a wrong answer.

const (
	// maxObjectSize bounds an object (or a delta) read: manifests, the
	// trees and commits above them are far smaller.
	maxObjectSize = 64 << 20
	// maxDeltaDepth bounds a chain of deltas (git's default is 50).
	maxDeltaDepth = 50
	// maxInflated bounds the bytes inflated for one object, its delta
	// chain included, so a chain of large deltas cannot exhaust memory.
	maxInflated = 256 << 20
	// preallocate bounds what is allocated ahead of the bytes read
	// for an object whose header declares its size.
	preallocate = 1 << 20
	// maxAlternates bounds the alternate object directories followed.
	maxAlternates = 8
)

// Object types, as numbered in a packfile.
const (
	objCommit   = 1
	objTree     = 2
	objBlob     = 3
	objTag      = 4
	objOfsDelta = 6
	objRefDelta = 7
)

var typeNames = map[int]string{objCommit: "commit", objTree: "tree", objBlob: "blob", objTag: "tag"}

// errNotFound is an object found in none of the store's directories.
var errNotFound = errors.New("object not found")

// objectID is a SHA-1 object name.
type objectID [sha1.Size]byte

func (id objectID) String() string { return hex.EncodeToString(id[:]) }

// parseID returns the object name hex spells (40 lower-case hex digits).
func parseID(s string) (objectID, error) {
	var id objectID
	if len(s) != 2*sha1.Size {
		return id, fmt.Errorf("%q is not a SHA-1 object name", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%q is not a SHA-1 object name: %w", s, err)
	}
	return id, nil
}

// openRegular opens file for reading if it is a regular file once links
// are followed, without blocking on its kind (a FIFO put where an object
// or a manifest is expected): anything else is an error, a directory's
// wrapping syscall.EISDIR.
func openRegular(file string) (*os.File, error) {
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		if fi.IsDir() {
			return nil, &os.PathError{Op: "read", Path: file, Err: syscall.EISDIR}
		}
		return nil, fmt.Errorf("%s: not a regular file (%s)", file, fi.Mode().Type())
	}
	return f, nil
}

// hashObject returns the name git gives an object of type typ with data.
func hashObject(typ string, data []byte) objectID {
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00", typ, len(data))
	h.Write(data)
	var id objectID
	copy(id[:], h.Sum(nil))
	return id
}

// store is a repository's object store: its objects directory and the
// alternates it names. It keeps packfiles open until close.
type store struct {
	dirs  []string
	packs []*pack // nil until loaded
	// budget is what may still be inflated for the object being read.
	budget int64
}

// openStore returns the object store of the repository whose common git
// directory is commonDir.
func openStore(commonDir string) (*store, error) {
	main := filepath.Join(commonDir, "objects")
	if _, err := os.Stat(main); err != nil {
		return nil, err
	}
	s := &store{dirs: []string{main}}
	// objects/info/alternates: one objects directory a line, relative to
	// the objects directory; alternates of alternates are not followed.
	b, err := readSmall(filepath.Join(main, "info", "alternates"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, line := range strings.Split(b, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if len(s.dirs) > maxAlternates {
			return nil, fmt.Errorf("%s: more than %d alternates", main, maxAlternates)
		}
		if !filepath.IsAbs(line) {
			line = filepath.Join(main, line)
		}
		s.dirs = append(s.dirs, filepath.Clean(line))
	}
	return s, nil
}

// close closes the packfiles s opened.
func (s *store) close() {
	for _, p := range s.packs {
		p.close()
	}
	s.packs = nil
}

// read returns the type and content of the object id, checked against id.
func (s *store) read(id objectID) (string, []byte, error) {
	s.budget = maxInflated
	typ, data, err := s.readDepth(id, 0)
	if err != nil {
		return "", nil, fmt.Errorf("object %s: %w", id, err)
	}
	if hashObject(typ, data) != id {
		return "", nil, fmt.Errorf("object %s: content does not match its name", id)
	}
	return typ, data, nil
}

// readDepth is read at delta depth depth (a REF_DELTA's base is read
// through it), not checked.
func (s *store) readDepth(id objectID, depth int) (string, []byte, error) {
	if depth > maxDeltaDepth {
		return "", nil, fmt.Errorf("delta chain longer than %d", maxDeltaDepth)
	}
	for _, dir := range s.dirs {
		hexID := id.String()
		f, err := openRegular(filepath.Join(dir, hexID[:2], hexID[2:]))
		if err == nil {
			typ, data, err := s.readLoose(f)
			f.Close()
			return typ, data, err
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", nil, err
		}
	}
	if err := s.loadPacks(); err != nil {
		return "", nil, err
	}
	for _, p := range s.packs {
		off, ok, err := p.find(id)
		if err != nil {
			return "", nil, err
		}
		if ok {
			return p.readAt(s, off, depth)
		}
	}
	return "", nil, errNotFound
}

// readLoose reads a loose object: zlib of "TYPE SIZE\0" and the content.
func (s *store) readLoose(f *os.File) (string, []byte, error) {
	zr, err := zlib.NewReader(f)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	defer zr.Close()
	br := bufio.NewReader(io.LimitReader(zr, 64))
	hdr, err := br.ReadString(0)
	if err != nil {
		return "", nil, fmt.Errorf("%s: header: %w", f.Name(), err)
	}
	typ, sizeStr, ok := strings.Cut(strings.TrimSuffix(hdr, "\x00"), " ")
	size, err := strconv.ParseInt(sizeStr, 10, 64)
	if !ok || err != nil || size < 0 || !knownType(typ) {
		return "", nil, fmt.Errorf("%s: bad header %q", f.Name(), hdr)
	}
	// What br buffered past the header is content.
	rest := io.MultiReader(br, zr)
	data, err := s.inflate(rest, size)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return typ, data, nil
}

func knownType(typ string) bool {
	return typ == "commit" || typ == "tree" || typ == "blob" || typ == "tag"
}

// inflate reads exactly size bytes of r, within maxObjectSize and the
// budget left.
func (s *store) inflate(r io.Reader, size int64) ([]byte, error) {
	if size > maxObjectSize {
		return nil, fmt.Errorf("object of %d bytes, more than the %d read", size, maxObjectSize)
	}
	if size > s.budget {
		return nil, fmt.Errorf("more than %d bytes inflated for one object", maxInflated)
	}
	s.budget -= size
	// Grown as read, not allocated from the declared size: a few corrupt
	// bytes that declare 64 MiB cost what they inflate to.
	var b bytes.Buffer
	b.Grow(int(min(size, preallocate)))
	if _, err := b.ReadFrom(io.LimitReader(r, size)); err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	if int64(b.Len()) != size {
		return nil, fmt.Errorf("content of %d bytes, not %d", b.Len(), size)
	}
	return b.Bytes(), nil
}

// loadPacks opens the index of every packfile of s's directories, once.
func (s *store) loadPacks() error {
	if s.packs != nil {
		return nil
	}
	s.packs = []*pack{}
	for _, dir := range s.dirs {
		idxs, err := filepath.Glob(filepath.Join(dir, "pack", "pack-*.idx"))
		if err != nil {
			return err
		}
		sort.Strings(idxs)
		for _, idx := range idxs {
			p, err := openPack(idx)
			if err != nil {
				return err
			}
			s.packs = append(s.packs, p)
		}
	}
	return nil
}

// pack is a packfile and its version 2 index, read with ReadAt: an index
// is never read whole.
type pack struct {
	idx, data *os.File
	idxSize   int64
	dataSize  int64
	count     uint32
	fanout    [256]uint32
}

const (
	idxHeader   = 8                // magic \377tOc and version 2
	idxNames    = idxHeader + 1024 // after the fanout table
	packHeader  = 12               // PACK, version, count
	packTrailer = sha1.Size
)

// openPack opens the index idxPath and its packfile and checks the
// index's header, fanout table and size.
func openPack(idxPath string) (*pack, error) {
	idx, err := openRegular(idxPath)
	if err != nil {
		return nil, err
	}
	p := &pack{idx: idx}
	if err := p.open(idxPath); err != nil {
		p.close()
		return nil, fmt.Errorf("%s: %w", idxPath, err)
	}
	return p, nil
}

func (p *pack) open(idxPath string) error {
	fi, err := p.idx.Stat()
	if err != nil {
		return err
	}
	p.idxSize = fi.Size()
	var hdr [idxNames]byte
	if _, err := p.idx.ReadAt(hdr[:], 0); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if !bytes.Equal(hdr[:8], []byte{0xff, 't', 'O', 'c', 0, 0, 0, 2}) {
		return errors.New("not a version 2 pack index")
	}
	var prev uint32
	for i := range p.fanout {
		n := binary.BigEndian.Uint32(hdr[idxHeader+4*i:])
		if n < prev {
			return errors.New("fanout table not sorted")
		}
		p.fanout[i], prev = n, n
	}
	p.count = prev
	// Names, CRCs, offsets, then the two checksums; large offsets may
	// follow the offsets.
	if min := int64(idxNames) + int64(p.count)*(sha1.Size+4+4) + 2*sha1.Size; p.idxSize < min {
		return fmt.Errorf("%d bytes, too short for %d objects", p.idxSize, p.count)
	}
	p.data, err = openRegular(strings.TrimSuffix(idxPath, ".idx") + ".pack")
	if err != nil {
		return err
	}
	if fi, err = p.data.Stat(); err != nil {
		return err
	}
	p.dataSize = fi.Size()
	var ph [packHeader]byte
	if _, err := p.data.ReadAt(ph[:], 0); err != nil {
		return fmt.Errorf("pack header: %w", err)
	}
	if string(ph[:4]) != "PACK" || binary.BigEndian.Uint32(ph[4:]) < 2 || binary.BigEndian.Uint32(ph[4:]) > 3 {
		return errors.New("not a version 2 or 3 packfile")
	}
	return nil
}

func (p *pack) close() {
	if p.idx != nil {
		p.idx.Close()
	}
	if p.data != nil {
		p.data.Close()
	}
}

// find returns the offset of id in the packfile, by binary search of the
// index's sorted names between the fanout bounds.
func (p *pack) find(id objectID) (int64, bool, error) {
	lo := uint32(0)
	if id[0] > 0 {
		lo = p.fanout[id[0]-1]
	}
	hi := p.fanout[id[0]]
	var name objectID
	for lo < hi {
		mid := lo + (hi-lo)/2
		if _, err := p.idx.ReadAt(name[:], idxNames+int64(mid)*sha1.Size); err != nil {
			return 0, false, fmt.Errorf("%s: %w", p.idx.Name(), err)
		}
		switch c := bytes.Compare(name[:], id[:]); {
		case c == 0:
			off, err := p.offset(mid)
			return off, err == nil, err
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return 0, false, nil
}

// offset returns the packfile offset of the index's entry i: 31 bits, or
// an index into the large-offset table when the top bit is set.
func (p *pack) offset(i uint32) (int64, error) {
	offsets := int64(idxNames) + int64(p.count)*(sha1.Size+4)
	var b [8]byte
	if _, err := p.idx.ReadAt(b[:4], offsets+int64(i)*4); err != nil {
		return 0, fmt.Errorf("%s: %w", p.idx.Name(), err)
	}
	off := int64(binary.BigEndian.Uint32(b[:4]))
	if off&0x80000000 != 0 {
		large := offsets + int64(p.count)*4 + (off&0x7fffffff)*8
		if large+8 > p.idxSize-2*sha1.Size {
			return 0, fmt.Errorf("%s: large offset %d out of the index", p.idx.Name(), off&0x7fffffff)
		}
		if _, err := p.idx.ReadAt(b[:], large); err != nil {
			return 0, fmt.Errorf("%s: %w", p.idx.Name(), err)
		}
		off = int64(binary.BigEndian.Uint64(b[:]))
	}
	if off < packHeader || off >= p.dataSize-packTrailer {
		return 0, fmt.Errorf("%s: offset %d out of the packfile", p.idx.Name(), off)
	}
	return off, nil
}

// readAt returns the object at offset off of the packfile, its deltas
// applied (depth is the delta depth so far).
func (p *pack) readAt(s *store, off int64, depth int) (string, []byte, error) {
	if depth > maxDeltaDepth {
		return "", nil, fmt.Errorf("delta chain longer than %d", maxDeltaDepth)
	}
	if off < packHeader || off >= p.dataSize-packTrailer {
		return "", nil, fmt.Errorf("%s: offset %d out of the packfile", p.data.Name(), off)
	}
	br := bufio.NewReader(io.NewSectionReader(p.data, off, p.dataSize-packTrailer-off))
	typ, size, err := entryHeader(br)
	if err != nil {
		return "", nil, fmt.Errorf("%s at %d: %w", p.data.Name(), off, err)
	}
	var baseType string
	var base []byte
	switch typ {
	case objCommit, objTree, objBlob, objTag:
	case objOfsDelta:
		rel, err := ofsDeltaOffset(br)
		if err != nil || rel <= 0 || rel > off {
			return "", nil, fmt.Errorf("%s at %d: bad delta base offset", p.data.Name(), off)
		}
		// This delta's data first, then its base: br is done with then.
		delta, err := p.inflateAt(s, off, br, size)
		if err != nil {
			return "", nil, err
		}
		if baseType, base, err = p.readAt(s, off-rel, depth+1); err != nil {
			return "", nil, err
		}
		return applyTo(s, baseType, base, delta)
	case objRefDelta:
		var baseID objectID
		if _, err := io.ReadFull(br, baseID[:]); err != nil {
			return "", nil, fmt.Errorf("%s at %d: delta base: %w", p.data.Name(), off, err)
		}
		delta, err := p.inflateAt(s, off, br, size)
		if err != nil {
			return "", nil, err
		}
		if baseType, base, err = s.readDepth(baseID, depth+1); err != nil {
			return "", nil, err
		}
		return applyTo(s, baseType, base, delta)
	default:
		return "", nil, fmt.Errorf("%s at %d: object type %d", p.data.Name(), off, typ)
	}
	data, err := p.inflateAt(s, off, br, size)
	if err != nil {
		return "", nil, err
	}
	return typeNames[typ], data, nil
}

// applyTo applies delta to base (of type baseType) within s's budget.
func applyTo(s *store, baseType string, base, delta []byte) (string, []byte, error) {
	out, err := applyDelta(base, delta, min(int64(maxObjectSize), s.budget))
	if err != nil {
		return "", nil, err
	}
	s.budget -= int64(len(out))
	return baseType, out, nil
}

// inflateAt inflates the zlib stream br is at, of the entry at off, size
// bytes once inflated.
func (p *pack) inflateAt(s *store, off int64, br io.Reader, size int64) ([]byte, error) {
	zr, err := zlib.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("%s at %d: %w", p.data.Name(), off, err)
	}
	defer zr.Close()
	data, err := s.inflate(zr, size)
	if err != nil {
		return nil, fmt.Errorf("%s at %d: %w", p.data.Name(), off, err)
	}
	return data, nil
}

// entryHeader reads a packfile entry's header: the type in bits 4-6 of
// the first byte, the size in its low 4 bits and 7 bits of each next byte
// while the top bit is set.
func entryHeader(r io.ByteReader) (int, int64, error) {
	c, err := r.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	typ := int(c>>4) & 7
	size := int64(c & 0x0f)
	for shift := 4; c&0x80 != 0; shift += 7 {
		if shift > 56 {
			return 0, 0, errors.New("entry size too long")
		}
		if c, err = r.ReadByte(); err != nil {
			return 0, 0, err
		}
		size |= int64(c&0x7f) << shift
	}
	if size < 0 {
		return 0, 0, errors.New("entry size negative")
	}
	return typ, size, nil
}

// ofsDeltaOffset reads an OFS_DELTA's base offset, relative to the entry:
// big-endian 7-bit groups, each continuation adding one.
func ofsDeltaOffset(r io.ByteReader) (int64, error) {
	c, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	off := int64(c & 0x7f)
	for i := 0; c&0x80 != 0; i++ {
		if i > 8 {
			return 0, errors.New("delta base offset too long")
		}
		if c, err = r.ReadByte(); err != nil {
			return 0, err
		}
		off = ((off + 1) << 7) | int64(c&0x7f)
	}
	return off, nil
}

// deltaSize reads one of a delta's two sizes: little-endian 7-bit groups.
func deltaSize(d []byte) (int64, []byte, error) {
	var n int64
	for shift := 0; ; shift += 7 {
		if len(d) == 0 || shift > 56 {
			return 0, nil, errors.New("delta: bad size")
		}
		c := d[0]
		d = d[1:]
		n |= int64(c&0x7f) << shift
		if c&0x80 == 0 {
			return n, d, nil
		}
	}
}

// applyDelta returns base with git's delta applied: the base's size, the
// result's size (at most limit), then instructions that copy a range of
// the base or insert bytes of the delta.
func applyDelta(base, delta []byte, limit int64) ([]byte, error) {
	srcSize, d, err := deltaSize(delta)
	if err != nil {
		return nil, err
	}
	if srcSize != int64(len(base)) {
		return nil, fmt.Errorf("delta: for a base of %d bytes, not %d", srcSize, len(base))
	}
	dstSize, d, err := deltaSize(d)
	if err != nil {
		return nil, err
	}
	if dstSize < 0 || dstSize > limit {
		return nil, fmt.Errorf("delta: result of %d bytes, more than the %d read", dstSize, limit)
	}
	out := make([]byte, 0, min(dstSize, preallocate))
	for len(d) > 0 {
		cmd := d[0]
		d = d[1:]
		switch {
		case cmd&0x80 != 0:
			var off, n int64
			for i := range 7 {
				if cmd&(1<<i) == 0 {
					continue
				}
				if len(d) == 0 {
					return nil, errors.New("delta: truncated copy")
				}
				if i < 4 {
					off |= int64(d[0]) << (8 * i)
				} else {
					n |= int64(d[0]) << (8 * (i - 4))
				}
				d = d[1:]
			}
			if n == 0 {
				n = 0x10000
			}
			if off+n > int64(len(base)) || int64(len(out))+n > dstSize {
				return nil, errors.New("delta: copy out of bounds")
			}
			out = append(out, base[off:off+n]...)
		case cmd != 0:
			n := int64(cmd)
			if n > int64(len(d)) || int64(len(out))+n > dstSize {
				return nil, errors.New("delta: insert out of bounds")
			}
			out = append(out, d[:n]...)
			d = d[n:]
		default:
			return nil, errors.New("delta: reserved instruction 0")
		}
	}
	if int64(len(out)) != dstSize {
		return nil, fmt.Errorf("delta: result of %d bytes, not %d", len(out), dstSize)
	}
	return out, nil
}

// commitTree returns the tree a commit object names on its first line.
func commitTree(data []byte) (objectID, error) {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	hexID, ok := bytes.CutPrefix(line, []byte("tree "))
	if !ok {
		return objectID{}, errors.New("commit without a tree line")
	}
	return parseID(string(hexID))
}

// treeEntry returns the mode and object of the entry name in a tree
// object: entries of "MODE NAME\0" and a 20-byte name.
func treeEntry(data []byte, name string) (string, objectID, bool, error) {
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		if sp < 0 {
			return "", objectID{}, false, errors.New("tree: entry without a mode")
		}
		mode := string(data[:sp])
		data = data[sp+1:]
		nul := bytes.IndexByte(data, 0)
		if nul < 0 || len(data) < nul+1+sha1.Size {
			return "", objectID{}, false, errors.New("tree: truncated entry")
		}
		entry := string(data[:nul])
		var id objectID
		copy(id[:], data[nul+1:])
		data = data[nul+1+sha1.Size:]
		if entry == name {
			return mode, id, true, nil
		}
	}
	return "", objectID{}, false, nil
}

// blobAt returns the blob id and mode at the slash-separated path in the
// tree of commit, found false when the tree has no blob there.
func (s *store) blobAt(commit objectID, path string) (objectID, string, bool, error) {
	typ, data, err := s.read(commit)
	if err != nil {
		return objectID{}, "", false, err
	}
	if typ != "commit" {
		return objectID{}, "", false, fmt.Errorf("%s is a %s, not a commit", commit, typ)
	}
	tree, err := commitTree(data)
	if err != nil {
		return objectID{}, "", false, fmt.Errorf("commit %s: %w", commit, err)
	}
	// One tree a path element: the path bounds the depth.
	els := strings.Split(path, "/")
	for i, el := range els {
		typ, data, err := s.read(tree)
		if err != nil {
			return objectID{}, "", false, err
		}
		if typ != "tree" {
			return objectID{}, "", false, fmt.Errorf("%s is a %s, not a tree", tree, typ)
		}
		mode, id, ok, err := treeEntry(data, el)
		if err != nil {
			return objectID{}, "", false, fmt.Errorf("tree %s: %w", tree, err)
		}
		if !ok {
			return objectID{}, "", false, nil
		}
		dir := mode == "40000"
		if i < len(els)-1 {
			if !dir {
				return objectID{}, "", false, nil
			}
			tree = id
			continue
		}
		if dir || mode == "160000" {
			return objectID{}, "", false, nil
		}
		return id, mode, true, nil
	}
	return objectID{}, "", false, nil
}
