package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newDocsCmd writes the man pages and shell completions of the command
// tree it is given, the one the binary runs: the packages ship them
// (deploy/package). Hidden: it is for packaging, not for operators.
func newDocsCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "docs DIR",
		Short:  "Write man pages (DIR/man8) and bash and zsh completions (DIR/completion) for packaging",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			man, comp := filepath.Join(dir, "man8"), filepath.Join(dir, "completion")
			for _, d := range []string{man, comp} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
			// Section 8: upgrader is a system administration command.
			header := &doc.GenManHeader{Title: "UPGRADER", Section: "8", Source: "upgrader " + version, Manual: "upgrader manual"}
			// The tree without this command: the man pages and completions
			// describe what operators type.
			root.RemoveCommand(cmd)
			root.DisableAutoGenTag = true
			if err := doc.GenManTree(root, header, man); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			if err := root.GenBashCompletionFileV2(filepath.Join(comp, "upgrader.bash"), true); err != nil {
				return fmt.Errorf("bash completion: %w", err)
			}
			if err := root.GenZshCompletionFile(filepath.Join(comp, "_upgrader")); err != nil {
				return fmt.Errorf("zsh completion: %w", err)
			}
			return nil
		},
	}
}
