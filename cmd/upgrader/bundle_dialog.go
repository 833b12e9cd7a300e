package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"upgrader/orchestrator"
	"upgrader/steps/bundle"
)

// dialog asks what getpomlogs.sh asks, in its order: the directory, the
// processes, the date range.
type dialog struct {
	in  *bufio.Reader
	out io.Writer
}

// errNoAnswer ends the dialog when the terminal closes (Ctrl-D).
var errNoAnswer = withCode(exitUsage, errors.New("no answer (end of input): nothing was collected"))

func (d *dialog) line(prompt string) (string, error) {
	fmt.Fprint(d.out, prompt)
	s, err := d.in.ReadString('\n')
	if err != nil && (err != io.EOF || s == "") {
		fmt.Fprintln(d.out)
		return "", errNoAnswer
	}
	return strings.TrimSpace(s), nil
}

func (d *dialog) yesNo(question string) (bool, error) {
	for {
		ans, err := d.line(question + " (y/n): ")
		if err != nil {
			return false, err
		}
		switch strings.ToLower(ans) {
		case "y", "yes":
			return true, nil
		case "n", "no":
			return false, nil
		}
		fmt.Fprintln(d.out, "Please answer y or n.")
	}
}

// directory offers def and asks for another until one exists (or is made)
// and has room for an archive of about need bytes.
func (d *dialog) directory(def string, need int64) (string, error) {
	fmt.Fprintf(d.out, "The archive will be saved in %s\n", def)
	change, err := d.yesNo("Do you want to change the archive directory?")
	if err != nil {
		return "", err
	}
	dir := def
	for {
		if change {
			if dir, err = d.line("Enter the archive directory: "); err != nil {
				return "", err
			}
			if dir == "" {
				continue
			}
			if dir, err = filepath.Abs(dir); err != nil {
				return "", withCode(exitError, err)
			}
		}
		change = true // from now on, any problem asks for another directory
		if ok, err := d.ensureDir(dir, dir == def); err != nil || !ok {
			if err != nil {
				return "", err
			}
			continue
		}
		if free, ok := freeSpaceAt(dir); ok && free < need {
			fmt.Fprintf(d.out, "Not enough free space in %s: the archive needs about %s, %s is free.\n",
				dir, orchestrator.BytesText(need), orchestrator.BytesText(free))
			continue
		}
		return dir, nil
	}
}

// ensureDir makes sure dir is a directory: the default one is made
// without asking (getpomlogs.sh's own place), another only if the engineer
// says so.
func (d *dialog) ensureDir(dir string, isDefault bool) (bool, error) {
	st, err := os.Stat(dir)
	switch {
	case err == nil && st.IsDir():
		return true, nil
	case err == nil:
		fmt.Fprintf(d.out, "%s is not a directory.\n", dir)
		return false, nil
	}
	if !isDefault {
		create, err := d.yesNo(fmt.Sprintf("%s is not a directory. Create it?", dir))
		if err != nil || !create {
			return false, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(d.out, "Cannot create %s: %v\n", dir, err)
		return false, nil
	}
	return true, nil
}

// processes offers the ten processes; a number toggles one, ENTER ends.
func (d *dialog) processes() ([]string, error) {
	some, err := d.yesNo("Do you want to collect the logs of some processes only?")
	if err != nil || !some {
		return nil, err
	}
	picked := make([]bool, len(bundle.Processes))
	for {
		fmt.Fprintln(d.out, "Processes (+ marks the selected ones):")
		for i, p := range bundle.Processes {
			mark := " "
			if picked[i] {
				mark = "+"
			}
			fmt.Fprintf(d.out, " %s %2d) %s\n", mark, i+1, p)
		}
		ans, err := d.line("Type a number to select or deselect a process, ENTER when done: ")
		if err != nil {
			return nil, err
		}
		if ans == "" {
			break
		}
		n, err := strconv.Atoi(ans)
		if err != nil || n < 1 || n > len(bundle.Processes) {
			fmt.Fprintf(d.out, "Invalid option: %s\n", ans)
			continue
		}
		picked[n-1] = !picked[n-1]
	}
	var names []string
	for i, p := range bundle.Processes {
		if picked[i] {
			names = append(names, p)
		}
	}
	if len(names) == 0 {
		fmt.Fprintln(d.out, "No process selected: the logs of every process are collected.")
	} else {
		fmt.Fprintf(d.out, "Selected processes: %s\n", strings.Join(names, ", "))
	}
	return names, nil
}

// dates asks for a range: a start, then an end that is not before it.
func (d *dialog) dates() (bundle.Range, error) {
	some, err := d.yesNo("Do you want to collect the logs of a date range only?")
	if err != nil || !some {
		return bundle.Range{}, err
	}
	var r bundle.Range
	if r.Since, err = d.date("Start date (YYYY-MM-DD HH:MM:SS): "); err != nil {
		return r, err
	}
	for {
		if r.Until, err = d.date("End date (YYYY-MM-DD HH:MM:SS): "); err != nil {
			return r, err
		}
		if err := r.Check(); err != nil {
			fmt.Fprintf(d.out, "Invalid range: %v; enter an end after the start.\n", err)
			continue
		}
		fmt.Fprintf(d.out, "Date range: %s to %s\n", r.Since.Format(bundle.DateLayout), r.Until.Format(bundle.DateLayout))
		return r, nil
	}
}

func (d *dialog) date(prompt string) (time.Time, error) {
	for {
		ans, err := d.line(prompt)
		if err != nil {
			return time.Time{}, err
		}
		t, err := bundle.ParseDate(ans)
		if err == nil {
			return t, nil
		}
		fmt.Fprintf(d.out, "Invalid date: %v\n", err)
	}
}
