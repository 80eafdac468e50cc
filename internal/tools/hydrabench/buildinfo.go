package main

import (
	"debug/buildinfo"
	"fmt"
	"slices"
	"strings"
)

// hydraModule is Hydra's module path.
const hydraModule = "github.com/ory/hydra/v2"

// hydraVersion reads from the binary at path the version of Hydra's
// module it was built from (`hydra version` says "master" for a build
// from the module proxy), and refuses a build without the sqlite tag,
// whose Hydra cannot open a SQLite database.
func hydraVersion(path string) (string, error) {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return "", err
	}
	version := ""
	if info.Main.Path == hydraModule {
		version = info.Main.Version
	}
	for _, d := range info.Deps {
		if d.Path == hydraModule {
			version = d.Version
		}
	}
	if version == "" {
		return "", fmt.Errorf("%s is not built from %s", path, hydraModule)
	}
	for _, s := range info.Settings {
		if s.Key == "-tags" && slices.Contains(strings.Split(s.Value, ","), "sqlite") {
			return version, nil
		}
	}
	return "", fmt.Errorf("%s was built without the sqlite tag: build it with NSAUTH_HYDRA_TAGS=sqlite,sqlite_omit_load_extension bash interop/build-hydra.sh", path)
}
