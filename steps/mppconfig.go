package steps

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"

	"upgrader/orchestrator"
)

// mppConfig sets the ccxml.jsi sizes in one MPP's mppconfig.xml, after a
// durable copy of the original. The edit touches only the parameter values
// (or adds missing parameters next to the others) and keeps every other
// byte of the file.
type mppConfig struct{ h *Host }

// mppParams are the parameters the step sets, in file order.
var mppParams = []string{orchestrator.MPPRuntimeSizeParam, orchestrator.MPPContextSizeParam}

// OriginalSuffix names the untouched copy kept next to an edited file.
const OriginalSuffix = ".upgrader-orig"

func paramRE(name string) *regexp.Regexp {
	return regexp.MustCompile(`(<parameter\s+name="` + regexp.QuoteMeta(name) + `"\s*>)([^<]*)(</parameter>)`)
}

// SetMPPParams returns data with each parameter set to its value, and
// whether anything changed. Duplicated parameters are refused.
func SetMPPParams(data []byte, values map[string]string) ([]byte, bool, error) {
	out := data
	for _, name := range mppParams {
		want, ok := values[name]
		if !ok {
			continue
		}
		re := paramRE(name)
		switch locs := re.FindAllSubmatchIndex(out, -1); len(locs) {
		case 0:
			var ok bool
			if out, ok = insertParam(out, name, want); !ok {
				return data, false, fmt.Errorf("parameter %s is missing and the file has no ccxml parameter to add it next to: fix the file by hand first", name)
			}
		case 1:
			l := locs[0]
			out = append(append(append([]byte(nil), out[:l[4]]...), want...), out[l[5]:]...)
		default:
			return data, false, fmt.Errorf("parameter %s appears %d times: fix the file by hand first", name, len(locs))
		}
	}
	return out, !bytes.Equal(out, data), nil
}

var paramLine = regexp.MustCompile(`(?m)^([ \t]*)<parameter\s+name="([^"]*)"[^\n]*</parameter>[ \t]*(\r?\n)`)

// insertParam adds a parameter line after the last ccxml parameter line
// (the category it belongs to), with that line's indentation and ending.
// It reports false when there is no such line.
func insertParam(data []byte, name, value string) ([]byte, bool) {
	var l []int
	for _, loc := range paramLine.FindAllSubmatchIndex(data, -1) {
		if strings.HasPrefix(string(data[loc[4]:loc[5]]), "ccxml.") {
			l = loc
		}
	}
	if l == nil {
		return data, false // nowhere that surely is the ccxml category
	}
	indent, eol := data[l[2]:l[3]], data[l[6]:l[7]]
	line := fmt.Sprintf("%s<parameter name=%q>%s</parameter>%s", indent, name, value, eol)
	return append(append(append([]byte(nil), data[:l[1]]...), line...), data[l[1]:]...), true
}

func (s mppConfig) file(sc orchestrator.StepContext) string {
	return s.h.Profile.Path(sc.Spec.Params["config"])
}

func (s mppConfig) read(sc orchestrator.StepContext) ([]byte, error) {
	p := s.file(sc)
	st, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (symlink?): refusing to edit it", p)
	}
	return os.ReadFile(p)
}

func (s mppConfig) Probe(_ context.Context, sc orchestrator.StepContext) (bool, error) {
	data, err := s.read(sc)
	if err != nil {
		return false, err
	}
	_, changed, err := SetMPPParams(data, sc.Spec.Params)
	return err == nil && !changed, err
}

func (s mppConfig) Apply(_ context.Context, sc orchestrator.StepContext) error {
	p := s.file(sc)
	data, err := s.read(sc)
	if err != nil {
		return err
	}
	// The first copy is the original: a later attempt must not overwrite
	// it with a half-edited file.
	if _, err := os.Stat(p + OriginalSuffix); os.IsNotExist(err) {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		// The copy is as readable as the original, no more.
		if err := WriteFileAtomic(p+OriginalSuffix, data, st.Mode().Perm()); err != nil {
			return fmt.Errorf("back up %s: %w", p, err)
		}
	} else if err != nil {
		return err
	}
	out, changed, err := SetMPPParams(data, sc.Spec.Params)
	if err != nil || !changed {
		return err
	}
	return WriteFileAtomic(p, out, 0o644)
}

func (s mppConfig) Verify(_ context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	data, err := s.read(sc)
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	vals := map[string]string{}
	for _, name := range mppParams {
		m := paramRE(name).FindSubmatch(data)
		if m == nil || string(m[2]) != sc.Spec.Params[name] {
			return orchestrator.Outputs{}, fmt.Errorf("%s: %s is not %s", s.file(sc), name, sc.Spec.Params[name])
		}
		vals[name] = string(m[2])
	}
	// No copy means the values were already set before upgrader came.
	if _, err := os.Stat(s.file(sc) + OriginalSuffix); err == nil {
		vals["original"] = s.file(sc) + OriginalSuffix
	}
	return orchestrator.Outputs{Values: vals}, nil
}
