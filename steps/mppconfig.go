package steps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// mppConfig sets the ccxml.jsi sizes in one MPP's mppconfig.xml, after a
// durable copy of the original. The edit touches only the parameter values
// (or adds missing parameters next to the others) and keeps every other
// byte of the file.
//
// The file is on the machine of MPPFiles: this host's filesystem, or the
// MPP's own server over SSH (mppServer); mppConfig.on chooses.
type mppConfig struct{ h *Host }

// mppParams are the parameters the step sets, in file order.
var mppParams = []string{orchestrator.MPPRuntimeSizeParam, orchestrator.MPPContextSizeParam}

// OriginalSuffix names the untouched copy kept next to an edited file.
const OriginalSuffix = ".upgrader-orig"

// MaxMPPConfigSize is the largest mppconfig.xml the step edits (4 MiB): a
// larger one is not an MPP configuration and is refused, not read.
const MaxMPPConfigSize = 4 << 20

// MaxMPPConfigDepth is how deep elements of an mppconfig.xml may nest: a
// real one has a handful of levels; deeper is refused, not parsed on.
const MaxMPPConfigDepth = 64

// MPPFiles is what the mpp-config step may do to the machine that holds an
// MPP's configuration. Paths are that machine's paths.
type MPPFiles interface {
	// Stat describes path itself: a symlink is reported as a symlink,
	// never followed. A missing path gives an error that is fs.ErrNotExist.
	Stat(path string) (FileStat, error)
	// ReadFile returns the content of the regular file at path. It
	// refuses a symlink or any other kind of file, and a file larger than
	// max bytes (without reading it all).
	ReadFile(path string, max int64) ([]byte, error)
	// WriteFileAtomic replaces path durably (temp file in the same
	// directory, fsync, rename, fsync of the directory), keeping an
	// existing file's owner and mode; mode is for a new file.
	WriteFileAtomic(path string, data []byte, mode fs.FileMode) error
	// Exists says whether path exists (of any kind, not followed).
	Exists(path string) (bool, error)
}

// FileStat is what MPPFiles.Stat says of a path.
type FileStat struct {
	// Mode holds the type bits (fs.ModeSymlink, fs.ModeDir…) and the
	// permissions.
	Mode fs.FileMode
	Size int64
}

// LocalMPPFiles is MPPFiles on this host's filesystem.
type LocalMPPFiles struct{}

var _ MPPFiles = LocalMPPFiles{}

func (LocalMPPFiles) Stat(path string) (FileStat, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return FileStat{}, err
	}
	return FileStat{Mode: st.Mode(), Size: st.Size()}, nil
}

func (LocalMPPFiles) ReadFile(path string, max int64) ([]byte, error) {
	// O_NOFOLLOW: a symlink put in place after Stat is refused here too;
	// O_NONBLOCK: a FIFO put in place cannot hang the open.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s is not a regular file (symlink?): refusing to read it", path)
		}
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s): refusing to read it", path, st.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes: refusing to read it", path, max)
	}
	return data, nil
}

func (LocalMPPFiles) WriteFileAtomic(path string, data []byte, mode fs.FileMode) error {
	return WriteFileAtomic(path, data, mode)
}

func (LocalMPPFiles) Exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// on returns the step's work on the file the spec names, on the MPP's
// machine: this server, or its own over SSH.
func (s mppConfig) on(ctx context.Context, sc orchestrator.StepContext) (mppFile, error) {
	m := mppOfSpec(sc.Spec)
	srv, err := s.h.mppServer(ctx, m, sc.Spec.ID)
	if err != nil {
		return mppFile{}, fmt.Errorf("MPP %s (%s): %w", m.Name, srv.where, err)
	}
	return mppFile{files: srv.files, path: srv.path(m.Config), where: srv.where, keep: s.keeper(sc)}, nil
}

func (s mppConfig) Probe(ctx context.Context, sc orchestrator.StepContext) (bool, error) {
	f, err := s.on(ctx, sc)
	if err != nil {
		return false, err
	}
	return f.probe(sc.Spec.Params)
}

func (s mppConfig) Apply(ctx context.Context, sc orchestrator.StepContext) error {
	f, err := s.on(ctx, sc)
	if err != nil {
		return err
	}
	return f.apply(sc.Spec.Params)
}

func (s mppConfig) Verify(ctx context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	f, err := s.on(ctx, sc)
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	return f.verify(sc.Spec.Params)
}

// keeper returns what keeps upgrader's own copy of an MPP's original
// file, in <artifacts>/<run>/mpp-<name>-mppconfig.xml (0600, in 0700
// directories), and records it; nil when the host keeps none.
func (s mppConfig) keeper(sc orchestrator.StepContext) func(orig []byte) (orchestrator.Artifact, error) {
	if s.h.Artifacts == "" {
		return nil
	}
	dir := filepath.Join(s.h.Artifacts, sc.RunID)
	path := filepath.Join(dir, "mpp-"+sc.Spec.Params["mpp"]+"-mppconfig.xml")
	return func(orig []byte) (orchestrator.Artifact, error) {
		if err := securefs.MkdirPrivate(s.h.Artifacts, "artifacts directory"); err != nil {
			return orchestrator.Artifact{}, err
		}
		if err := securefs.MkdirPrivate(dir, "artifacts directory"); err != nil {
			return orchestrator.Artifact{}, err
		}
		switch kept, err := securefs.ReadRegular(path, MaxMPPConfigSize); {
		case errors.Is(err, fs.ErrNotExist):
			if err := securefs.WriteFile(path, orig, 0o600); err != nil {
				return orchestrator.Artifact{}, fmt.Errorf("keep a copy of the original: %w", err)
			}
		case err != nil:
			return orchestrator.Artifact{}, err
		case !bytes.Equal(kept, orig):
			return orchestrator.Artifact{}, fmt.Errorf("upgrader's copy %s of the MPP's original differs from the original kept on the MPP: "+
				"compare the two before going on; move %s aside once the one on the MPP is the original", path, path)
		}
		a, err := artifactOf(path, nil)
		a.Host = s.h.Role
		return a, err
	}
}

// mppFile is one mppconfig.xml on the machine of files.
type mppFile struct {
	files MPPFiles
	path  string
	where string // the machine, for messages and the record
	// keep keeps upgrader's own copy of the original (nil: none).
	keep func(orig []byte) (orchestrator.Artifact, error)
}

// read returns the file's content and permissions; it refuses anything
// but a regular file of at most MaxMPPConfigSize bytes.
func (m mppFile) read() ([]byte, fs.FileMode, error) {
	st, err := m.files.Stat(m.path)
	if err != nil {
		return nil, 0, err
	}
	if !st.Mode.IsRegular() {
		return nil, 0, fmt.Errorf("%s is not a regular file (symlink?): refusing to edit it", m.path)
	}
	if st.Size > MaxMPPConfigSize {
		return nil, 0, fmt.Errorf("%s is %d bytes, more than the %d an mppconfig.xml may have: refusing to edit it", m.path, st.Size, MaxMPPConfigSize)
	}
	data, err := m.files.ReadFile(m.path, MaxMPPConfigSize)
	if err != nil {
		return nil, 0, err
	}
	return data, st.Mode.Perm(), nil
}

func (m mppFile) probe(values map[string]string) (bool, error) {
	data, _, err := m.read()
	if err != nil {
		return false, err
	}
	_, changed, err := SetMPPParams(data, values)
	if err != nil {
		return false, fmt.Errorf("%s: %w", m.path, err)
	}
	return !changed, nil
}

func (m mppFile) apply(values map[string]string) error {
	data, mode, err := m.read()
	if err != nil {
		return err
	}
	// Everything is checked before anything is written: a refused file
	// gets no copy and keeps its bytes and time.
	out, changed, err := SetMPPParams(data, values)
	if err != nil {
		return fmt.Errorf("%s: %w", m.path, err)
	}
	if !changed {
		return nil
	}
	// The first copy is the original: a later attempt must not overwrite
	// it with a half-edited file.
	orig := m.path + OriginalSuffix
	switch st, err := m.files.Stat(orig); {
	case errors.Is(err, fs.ErrNotExist):
		// The copy is as readable as the original, no more.
		if err := m.files.WriteFileAtomic(orig, data, mode); err != nil {
			return fmt.Errorf("back up %s: %w", m.path, err)
		}
	case err != nil:
		return err
	case !st.Mode.IsRegular():
		return fmt.Errorf("%s is not a regular file: refusing to edit %s without a copy of its original", orig, m.path)
	default:
		// A copy from an earlier attempt: the file must still be what
		// was copied, or the copy is not its original any more.
		saved, err := m.files.ReadFile(orig, MaxMPPConfigSize)
		if err != nil {
			return err
		}
		if !bytes.Equal(saved, data) {
			return m.replaced(orig)
		}
	}
	if m.keep != nil {
		if _, err := m.keep(data); err != nil {
			return err
		}
	}
	// The file must not have changed while the copy was made: the edit
	// would otherwise replace a file nobody has a copy of.
	if now, err := m.files.ReadFile(m.path, MaxMPPConfigSize); err != nil {
		return err
	} else if !bytes.Equal(now, data) {
		return m.replaced(orig)
	}
	return m.files.WriteFileAtomic(m.path, out, mode)
}

// replaced is the refusal to edit a file that changed after its original
// was copied.
func (m mppFile) replaced(orig string) error {
	return fmt.Errorf("%s changed after upgrader copied its original to %s: not editing it; compare the two, move %s aside if the current file is the one to keep, then resume", m.path, orig, orig)
}

func (m mppFile) verify(values map[string]string) (orchestrator.Outputs, error) {
	data, _, err := m.read()
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	if err := checkMPPValues(values); err != nil {
		return orchestrator.Outputs{}, fmt.Errorf("%s: %w", m.path, err)
	}
	doc, err := parseMPPConfig(data)
	if err != nil {
		return orchestrator.Outputs{}, fmt.Errorf("%s: %w", m.path, err)
	}
	if err := doc.holds(values); err != nil {
		return orchestrator.Outputs{}, fmt.Errorf("%s: %w", m.path, err)
	}
	vals := map[string]string{}
	for _, name := range mppParams {
		if v, ok := values[name]; ok {
			vals[name] = v
		}
	}
	// Each MPP's file before and after, in the journal.
	vals["after_sha256"], vals["before_sha256"] = sha256Hex(data), sha256Hex(data)
	if m.where != "" {
		vals["server"] = m.where
	}
	out := orchestrator.Outputs{Values: vals}
	// No copy means the values were already set before upgrader came.
	orig := m.path + OriginalSuffix
	if ok, err := m.files.Exists(orig); err != nil {
		return orchestrator.Outputs{}, err
	} else if ok {
		vals["original"] = orig
		saved, err := m.files.ReadFile(orig, MaxMPPConfigSize)
		if err != nil {
			return orchestrator.Outputs{}, err
		}
		vals["before_sha256"] = sha256Hex(saved)
		if m.keep != nil {
			a, err := m.keep(saved)
			if err != nil {
				return orchestrator.Outputs{}, err
			}
			out.Artifacts = map[string]orchestrator.Artifact{"mpp-original": a}
		}
	}
	return out, nil
}

// SetMPPParams returns data with each parameter of mppParams that values
// names set to its value, and whether anything changed. On error it
// returns data itself and false.
//
// The document is read by encoding/xml (strict, every token) before and
// after the edit, and the edit is located by the parser: a parameter in a
// comment is not a parameter. The new value is spliced into the original
// bytes, so everything else (comments, order, indentation, line endings,
// a byte order mark) stays as it was. A missing parameter gets its own
// line after the last ccxml parameter's line, with that line's indentation
// and line ending.
//
// Refused: values that are not digits; a file over MaxMPPConfigSize; an
// encoding other than UTF-8 or ASCII; elements nested more than
// MaxMPPConfigDepth deep; a DOCTYPE or entity declaration
// anywhere; XML that is not well-formed; a parameter that appears more
// than once or is not of the form <parameter name="X">value</parameter>;
// a missing parameter with no ccxml parameter line to add it after.
func SetMPPParams(data []byte, values map[string]string) ([]byte, bool, error) {
	if err := checkMPPValues(values); err != nil {
		return data, false, err
	}
	doc, err := parseMPPConfig(data)
	if err != nil {
		return data, false, err
	}
	type edit struct {
		from, to int // the bytes of data that text replaces
		text     string
	}
	var edits []edit
	for _, name := range mppParams {
		want, ok := values[name]
		if !ok {
			continue
		}
		switch els := doc.named(name); len(els) {
		case 0:
			at, line, ok := doc.insertAfter(name, want)
			if !ok {
				return data, false, fmt.Errorf("parameter %s is missing and the file has no ccxml parameter on a line of its own to add it after: fix the file by hand first", name)
			}
			edits = append(edits, edit{at, at, line})
		case 1:
			el := els[0]
			if el.notSimple != "" {
				return data, false, fmt.Errorf("parameter %s (line %d) %s, not <parameter name=%q>value</parameter>: refusing to guess, fix the file by hand first", name, el.line, el.notSimple, name)
			}
			if string(data[el.valFrom:el.valTo]) != want {
				edits = append(edits, edit{el.valFrom, el.valTo, want})
			}
		default:
			lines := make([]string, len(els))
			for i, el := range els {
				lines[i] = fmt.Sprint(el.line)
			}
			return data, false, fmt.Errorf("parameter %s appears %d times (lines %s): fix the file by hand first", name, len(els), strings.Join(lines, ", "))
		}
	}
	if len(edits) == 0 {
		return data, false, nil
	}
	// Edits never overlap: a value lies inside its element, an insertion
	// after a whole line. Two insertions at one place keep mppParams order.
	slices.SortStableFunc(edits, func(a, b edit) int { return a.from - b.from })
	out := make([]byte, 0, len(data)+len(edits)*80)
	last := 0
	for _, e := range edits {
		out = append(out, data[last:e.from]...)
		out = append(out, e.text...)
		last = e.to
	}
	out = append(out, data[last:]...)

	if len(out) > MaxMPPConfigSize {
		return data, false, fmt.Errorf("the edited file would be %d bytes, more than the %d an mppconfig.xml may have: refusing to write it", len(out), MaxMPPConfigSize)
	}
	// The result is read again as the next run will read it.
	check, err := parseMPPConfig(out)
	if err == nil {
		err = check.holds(values)
	}
	if err != nil {
		return data, false, fmt.Errorf("the edited file would not pass the checks (%v): refusing to write it", err)
	}
	return out, true, nil
}

// checkMPPValues refuses a value that is not a size.
func checkMPPValues(values map[string]string) error {
	for _, name := range mppParams {
		v, ok := values[name]
		if !ok {
			continue
		}
		if v == "" || len(v) > 18 || strings.Trim(v, "0123456789") != "" {
			return fmt.Errorf("value %q for %s is not a size (1 to 18 digits): refusing to write it", v, name)
		}
	}
	return nil
}

// mppDoc is a well-formed mppconfig.xml and its parameter elements.
type mppDoc struct {
	data   []byte
	params []mppElem // every <parameter name="…"> element, in document order
}

// mppElem is one <parameter name="…"> element, as byte offsets in data.
type mppElem struct {
	name           string
	line           int // 1-based, of the start tag
	from, to       int // the element, from its '<' to after its end tag's '>'
	valFrom, valTo int // its content, between the tags
	// notSimple says how the element is not <parameter name="X">value</parameter>.
	notSimple string
}

// named returns the parameter elements called name.
func (d *mppDoc) named(name string) []mppElem {
	var out []mppElem
	for _, el := range d.params {
		if el.name == name {
			out = append(out, el)
		}
	}
	return out
}

// holds checks that each parameter values names appears once, plainly,
// with its value.
func (d *mppDoc) holds(values map[string]string) error {
	for _, name := range mppParams {
		want, ok := values[name]
		if !ok {
			continue
		}
		switch els := d.named(name); {
		case len(els) == 0:
			return fmt.Errorf("parameter %s is missing, want %s", name, want)
		case len(els) > 1:
			return fmt.Errorf("parameter %s appears %d times", name, len(els))
		case els[0].notSimple != "":
			return fmt.Errorf("parameter %s (line %d) %s", name, els[0].line, els[0].notSimple)
		case string(d.data[els[0].valFrom:els[0].valTo]) != want:
			return fmt.Errorf("parameter %s is %q, not %s", name, d.data[els[0].valFrom:els[0].valTo], want)
		}
	}
	return nil
}

// insertAfter returns where a new parameter's line goes and the line: after
// the last ccxml parameter element that has a line of its own, indented and
// ended as that line is. It reports false when there is none.
func (d *mppDoc) insertAfter(name, value string) (int, string, bool) {
	for i := len(d.params) - 1; i >= 0; i-- {
		el := d.params[i]
		if !strings.HasPrefix(el.name, "ccxml.") {
			continue
		}
		start := bytes.LastIndexByte(d.data[:el.from], '\n') + 1
		indent := d.data[start:el.from]
		if len(bytes.Trim(indent, " \t")) != 0 {
			continue
		}
		rest := d.data[el.to:]
		rest = rest[len(rest)-len(bytes.TrimLeft(rest, " \t")):]
		var eol string
		switch {
		case bytes.HasPrefix(rest, []byte("\r\n")):
			eol = "\r\n"
		case bytes.HasPrefix(rest, []byte("\n")):
			eol = "\n"
		default:
			continue
		}
		at := len(d.data) - len(rest) + len(eol)
		return at, string(indent) + `<parameter name="` + name + `">` + value + `</parameter>` + eol, true
	}
	return 0, "", false
}

var (
	utf8BOM  = []byte{0xEF, 0xBB, 0xBF}
	utf16BOM = [][]byte{{0xFE, 0xFF}, {0xFF, 0xFE}}
)

// errEncoding is what the decoder's CharsetReader answers for an encoding
// that is not edited.
var errEncoding = errors.New("only UTF-8 or ASCII files are edited")

// parseMPPConfig reads data with encoding/xml in strict mode, every token,
// and refuses what the step does not edit (see SetMPPParams). It returns
// the parameter elements with their byte ranges, found by the parser's
// InputOffset.
func parseMPPConfig(data []byte) (*mppDoc, error) {
	if len(data) > MaxMPPConfigSize {
		return nil, fmt.Errorf("the file is %d bytes, more than the %d an mppconfig.xml may have: refusing to edit it", len(data), MaxMPPConfigSize)
	}
	for _, bom := range utf16BOM {
		if bytes.HasPrefix(data, bom) {
			return nil, fmt.Errorf("the file is UTF-16 (byte order mark %X): %v, refusing to edit it", bom, errEncoding)
		}
	}
	// Never any entity expansion: not even a declaration in a comment is
	// worth the doubt.
	for _, decl := range []string{"<!DOCTYPE", "<!ENTITY"} {
		if i := bytes.Index(data, []byte(decl)); i >= 0 {
			return nil, fmt.Errorf("the file has %s (line %d): document types and entity declarations are refused (an mppconfig.xml has none); remove it by hand or restore the MPP's own file", decl, lineAt(data, i))
		}
	}
	base := 0 // encoding/xml reads a byte order mark as text: skip it
	if bytes.HasPrefix(data, utf8BOM) {
		base = len(utf8BOM)
	}
	body := data[base:]

	doc := &mppDoc{data: data}
	var charset string
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	dec.CharsetReader = func(label string, r io.Reader) (io.Reader, error) {
		charset = label
		if isASCIILabel(label) {
			return r, nil // the same reader: offsets stay byte offsets
		}
		return nil, errEncoding
	}
	malformed := func(off int, format string, args ...any) error {
		return fmt.Errorf("the file is not well-formed XML (line %d: %s): refusing to edit it", lineAt(data, base+off), fmt.Sprintf(format, args...))
	}
	// open holds, for each element open, the index of its parameter in
	// doc.params, or -1.
	var open []int
	roots, tokens := 0, 0
	for {
		from := int(dec.InputOffset())
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, errEncoding) {
				return nil, fmt.Errorf("the file declares encoding %q: %v, refusing to edit it", charset, errEncoding)
			}
			return nil, fmt.Errorf("the file is not well-formed XML (%v): refusing to edit it", err)
		}
		to := int(dec.InputOffset())
		tokens++
		switch t := tok.(type) {
		case xml.StartElement:
			if len(open) == 0 {
				if roots++; roots > 1 {
					return nil, malformed(from, "a second root element <%s>", t.Name.Local)
				}
			}
			if len(open) == MaxMPPConfigDepth {
				return nil, fmt.Errorf("the file nests elements more than %d levels deep (line %d): not an mppconfig.xml, refusing to edit it; check the MPP's config path in the profile",
					MaxMPPConfigDepth, lineAt(data, base+from))
			}
			for i, a := range t.Attr {
				for _, b := range t.Attr[:i] {
					if a.Name == b.Name {
						return nil, malformed(from, "attribute %s repeated in <%s>", a.Name.Local, t.Name.Local)
					}
				}
			}
			open = append(open, -1)
			if t.Name.Local != "parameter" {
				continue
			}
			if !isRawName(body[from:], "parameter") {
				return nil, fmt.Errorf("the file has a prefixed parameter element (line %d): refusing to guess whether it counts, fix the file by hand first", lineAt(data, base+from))
			}
			for _, a := range t.Attr {
				if a.Name.Space == "" && a.Name.Local == "name" {
					open[len(open)-1] = len(doc.params)
					doc.params = append(doc.params, mppElem{name: a.Value, line: lineAt(data, base+from),
						from: base + from, valFrom: base + to})
					break
				}
			}
		case xml.EndElement:
			i := open[len(open)-1]
			open = open[:len(open)-1]
			if i < 0 {
				continue
			}
			el := &doc.params[i]
			el.valTo, el.to = base+from, base+to
			switch content := data[el.valFrom:el.valTo]; {
			case from == to:
				el.notSimple = "is an empty element <parameter/>"
				el.valFrom, el.valTo = el.to, el.to
			case bytes.Contains(content, []byte("<![CDATA[")):
				el.notSimple = "holds a CDATA section"
			case bytes.Contains(content, []byte("<!--")):
				el.notSimple = "holds a comment"
			case bytes.Contains(content, []byte("<?")):
				el.notSimple = "holds a processing instruction"
			case bytes.IndexByte(content, '<') >= 0:
				el.notSimple = "holds elements"
			case bytes.IndexByte(content, '&') >= 0:
				el.notSimple = "holds a character or entity reference"
			}
		case xml.CharData:
			if len(open) == 0 && len(bytes.Trim(body[from:to], " \t\r\n")) != 0 {
				return nil, malformed(from, "text outside the root element")
			}
		case xml.ProcInst:
			if strings.EqualFold(t.Target, "xml") && (t.Target != "xml" || from != 0 || tokens != 1) {
				return nil, malformed(from, "an XML declaration that is not at the start of the file")
			}
		case xml.Directive:
			return nil, malformed(from, "a directive <!%.20s>: refused", t)
		}
	}
	if roots == 0 {
		return nil, fmt.Errorf("the file is not well-formed XML (no root element): refusing to edit it")
	}
	// encoding/xml does not check comments and processing instructions
	// for characters XML forbids; the whole file is checked here.
	ascii := charset != ""
	for i := 0; i < len(body); {
		r, n := utf8.DecodeRune(body[i:])
		if r == utf8.RuneError && n == 1 {
			return nil, malformed(i, "invalid UTF-8")
		}
		if !isXMLChar(r) {
			return nil, malformed(i, "character %U is not allowed in XML", r)
		}
		if ascii && r >= utf8.RuneSelf {
			return nil, malformed(i, "character %U in a file declared %s", r, charset)
		}
		i += n
	}
	return doc, nil
}

// isASCIILabel says whether an encoding label names ASCII.
func isASCIILabel(label string) bool {
	switch strings.ToLower(label) {
	case "us-ascii", "ascii", "iso646-us", "ansi_x3.4-1968":
		return true
	}
	return false
}

// isRawName says whether b starts with the tag <name, unprefixed.
func isRawName(b []byte, name string) bool {
	if !bytes.HasPrefix(b, []byte("<"+name)) || len(b) == len(name)+1 {
		return false
	}
	switch b[len(name)+1] {
	case ' ', '\t', '\r', '\n', '>', '/':
		return true
	}
	return false
}

// isXMLChar is the XML 1.0 Char production.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// lineAt returns the 1-based line of byte offset off.
func lineAt(data []byte, off int) int {
	return bytes.Count(data[:min(off, len(data))], []byte("\n")) + 1
}
