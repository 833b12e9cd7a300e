package steps

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

// simMPPConfigPath is the sim's mpp1 configuration, relative to steps/.
const simMPPConfigPath = "../testdata/simhost/pom/root/opt/Avaya/ExperiencePortal/mpp1/config/mppconfig.xml"

// fuzzMPPValues are the values the fuzzer picks from: the file is what is
// fuzzed; the values' own check is a table test.
var fuzzMPPValues = []map[string]string{
	{runtimeParam: "33554432", contextParam: "262144"},
	{runtimeParam: "1", contextParam: "22"},
	{runtimeParam: "33554432"},
	{contextParam: "000262144"},
	{runtimeParam: "32M", contextParam: "262144"},
}

// FuzzSetMPPParams checks, for any file and a few sets of values: no panic; a
// refusal returns the input untouched; an edit gives well-formed XML with
// each parameter once and at its value, is stable when run again, and
// changes no byte but the values and the inserted lines.
// More seeds are in testdata/fuzz/FuzzSetMPPParams.
func FuzzSetMPPParams(f *testing.F) {
	sim, err := os.ReadFile(simMPPConfigPath)
	if err != nil {
		f.Fatal(err)
	}
	decoy := `<!-- <parameter name="ccxml.jsi.runtimesize">1</parameter> -->`
	param := `<parameter name="ccxml.jsi.runtimesize">16777216</parameter>`
	s := string(sim)
	for _, seed := range []string{
		s,
		crlf(s),
		utf8BOMString + s,
		utf8BOMString + crlf(s),
		strings.Replace(s, param, decoy, 1),
		strings.Replace(s, param, decoy+"\n        "+param, 1),
		strings.Replace(s, "<mppconfig>", "<mppconfig><![CDATA[<parameter name=\"ccxml.jsi.contextsize\">1</parameter>]]>", 1),
		strings.Replace(s, "16777216", "33554432", 1),
	} {
		f.Add([]byte(seed), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		values := maps.Clone(fuzzMPPValues[int(which)%len(fuzzMPPValues)])
		values["mpp"] = "mpp1" // not a parameter: ignored
		in := bytes.Clone(data)
		out, changed, err := SetMPPParams(data, values)
		if !bytes.Equal(data, in) {
			t.Fatal("SetMPPParams modified its input")
		}
		if err != nil {
			if changed || !bytes.Equal(out, in) {
				t.Fatalf("refused (%v) but changed %v, same bytes %v", err, changed, bytes.Equal(out, in))
			}
			return
		}
		if changed == bytes.Equal(out, in) {
			t.Fatalf("changed = %v, but the bytes are the same: %v", changed, bytes.Equal(out, in))
		}
		if err := fuzzWellFormed(out); err != nil {
			t.Fatalf("output is not well-formed: %v\n%q", err, out)
		}
		after, err := fuzzParams(out)
		if err != nil {
			t.Fatal(err)
		}
		var asked []string
		for _, name := range mppParams {
			if _, ok := values[name]; ok {
				asked = append(asked, name)
			}
		}
		for _, name := range asked {
			if els := after[name]; len(els) != 1 || string(out[els[0].valFrom:els[0].valTo]) != values[name] {
				t.Fatalf("output has %s %d times, want once at %s:\n%q", name, len(els), values[name], out)
			}
		}

		again, changed, err := SetMPPParams(out, values)
		if err != nil || changed || !bytes.Equal(again, out) {
			t.Fatalf("second run: changed %v, err %v, same bytes %v", changed, err, bytes.Equal(again, out))
		}

		// Undo the edit: old values back, inserted lines out. What is left
		// must be the input, byte for byte.
		before, err := fuzzParams(in)
		if err != nil {
			t.Fatalf("the input was edited but does not parse: %v", err)
		}
		type undo struct {
			from, to int
			text     []byte
		}
		var undos []undo
		for _, name := range asked {
			el := after[name][0]
			switch old := before[name]; len(old) {
			case 1:
				undos = append(undos, undo{el.valFrom, el.valTo, in[old[0].valFrom:old[0].valTo]})
			case 0:
				start := bytes.LastIndexByte(out[:el.from], '\n') + 1
				end := bytes.IndexByte(out[el.to:], '\n')
				if end < 0 {
					t.Fatalf("inserted %s has no line ending", name)
				}
				undos = append(undos, undo{start, el.to + end + 1, nil})
			default:
				t.Fatalf("the input had %s %d times and was edited", name, len(old))
			}
		}
		slices.SortFunc(undos, func(a, b undo) int { return a.from - b.from })
		var back []byte
		last := 0
		for _, u := range undos {
			back = append(append(back, out[last:u.from]...), u.text...)
			last = u.to
		}
		back = append(back, out[last:]...)
		if !bytes.Equal(back, in) {
			t.Fatalf("bytes outside the edit changed:\n in %q\nout %q", in, out)
		}
	})
}

// fuzzDecoder reads data, past a UTF-8 byte order mark, strictly; an
// ASCII declaration is read as UTF-8.
func fuzzDecoder(data []byte) (*xml.Decoder, []byte) {
	body := bytes.TrimPrefix(data, []byte(utf8BOMString))
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	d.CharsetReader = func(label string, r io.Reader) (io.Reader, error) {
		if strings.EqualFold(label, "us-ascii") || strings.EqualFold(label, "ascii") {
			return r, nil
		}
		return nil, errors.New("unexpected charset " + label)
	}
	return d, body
}

// fuzzWellFormed reads every token of data.
func fuzzWellFormed(data []byte) error {
	d, _ := fuzzDecoder(data)
	for {
		if _, err := d.Token(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// fuzzElem is a parameter element's place in the data.
type fuzzElem struct{ from, to, valFrom, valTo int }

// fuzzParams finds the unprefixed <parameter name="…"> elements of data by
// name, with their byte offsets.
func fuzzParams(data []byte) (map[string][]fuzzElem, error) {
	d, body := fuzzDecoder(data)
	base := len(data) - len(body)
	out := map[string][]fuzzElem{}
	type frame struct {
		name string
		el   fuzzElem
	}
	var stack []*frame
	for {
		from := int(d.InputOffset())
		tok, err := d.Token()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		to := int(d.InputOffset())
		switch t := tok.(type) {
		case xml.StartElement:
			var fr *frame
			raw := body[from:]
			if bytes.HasPrefix(raw, []byte("<parameter")) && len(raw) > 10 && strings.IndexByte(" \t\r\n/>", raw[10]) >= 0 {
				for _, a := range t.Attr {
					if a.Name == (xml.Name{Local: "name"}) {
						fr = &frame{name: a.Value, el: fuzzElem{from: base + from, valFrom: base + to}}
						break
					}
				}
			}
			stack = append(stack, fr)
		case xml.EndElement:
			fr := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if fr != nil {
				fr.el.valTo, fr.el.to = base+from, base+to
				out[fr.name] = append(out[fr.name], fr.el)
			}
		}
	}
}
