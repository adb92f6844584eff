package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/reach-tools/reach/internal/version"
)

func init() { register("gen-docs", newGenDocsCmd) }

// newGenDocsCmd writes what packages install beside the binary, generated
// from this very command tree so that it cannot drift from it: man pages
// and shell completions (scripts/release). Hidden: it is for packagers.
func newGenDocsCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gen-docs man|completion DIR",
		Short: "Write the man pages (DIR/reach.1, ...) or shell completions (DIR/reach.bash, _reach, reach.fish)",
		Example: `  reach gen-docs man dist/man/man1
  reach gen-docs completion dist/completion`,
		Hidden: true,
		Args:   cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			dir := args[1]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			switch args[0] {
			case "man":
				return genMan(root, dir)
			case "completion":
				return genCompletions(root, dir)
			}
			return usageErrorf("gen-docs %q: give man or completion", args[0])
		},
	}
	return cmd
}

// genMan writes a page per command (reach.1, reach-check.1, ...), dated by
// the commit the build was made from, so that a release is reproducible.
func genMan(root *cobra.Command, dir string) error {
	in := version.Get()
	h := &doc.GenManHeader{Title: "REACH", Section: "1", Source: "reach " + in.Version, Manual: "reach manual"}
	if t, err := time.Parse(time.RFC3339, in.Date); err == nil {
		h.Date = &t
	}
	root.DisableAutoGenTag = true // its "Auto generated ... on DATE" would differ each run
	if err := doc.GenManTree(root, h, dir); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	return nil
}

// genCompletions writes bash (v2, with descriptions), zsh and fish scripts
// under the names each shell's completion directory expects.
func genCompletions(root *cobra.Command, dir string) error {
	write := func(name string, gen func(*os.File) error) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		return errors.Join(gen(f), f.Close())
	}
	return errors.Join(
		write("reach.bash", func(f *os.File) error { return root.GenBashCompletionV2(f, true) }),
		write("_reach", func(f *os.File) error { return root.GenZshCompletion(f) }),
		write("reach.fish", func(f *os.File) error { return root.GenFishCompletion(f, true) }),
	)
}
