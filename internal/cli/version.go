package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/reach-tools/reach/internal/version"
)

func init() { register("version", newVersionCmd) }

// versionJSON is reach version --json: the build's Info under a schema name.
type versionJSON struct {
	Schema string `json:"schema"`
	version.Info
}

func newVersionCmd(env *Env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the reach version and build information",
		Long: `Print the version of this build of reach, the commit it was built from and
that commit's date, the Go toolchain and the platform. reach --version prints
the same line.

A release build is stamped with them (scripts/release); go install
.../cmd/reach@VERSION records the version; a build from a git checkout the
commit, unless built with -buildvcs=false. What is not known reads "dev"
(version) or "unknown".`,
		Example: `  reach version
  reach version --json | jq -r .version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := version.Get()
			if asJSON {
				enc := json.NewEncoder(env.Out)
				return enc.Encode(versionJSON{Schema: "reach.version/v1", Info: in})
			}
			_, err := fmt.Fprintln(env.Out, in)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false,
		`print one JSON object: {"schema","version","commit","date","modified","go_version","platform"}`)
	return cmd
}
