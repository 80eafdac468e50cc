package tokenstore

import (
	"fmt"
	"os"
	"path/filepath"
)

// DirEnv is the environment variable that overrides the default
// configuration directory.
const DirEnv = "NSAUTH_CONFIG_DIR"

// DefaultDir returns $NSAUTH_CONFIG_DIR when set, otherwise the nsauth
// directory in the user's configuration directory (os.UserConfigDir:
// $XDG_CONFIG_HOME or ~/.config on Linux, ~/Library/Application Support on
// macOS, %AppData% on Windows). getenv looks up environment variables
// (os.LookupEnv in production).
func DefaultDir(getenv func(string) (string, bool)) (string, error) {
	if d, ok := getenv(DirEnv); ok && d != "" {
		return d, nil
	}
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the configuration directory: %w; set %s or pass --config-dir", err, DirEnv)
	}
	return filepath.Join(base, "nsauth"), nil
}
