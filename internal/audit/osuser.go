package audit

import (
	"os"
	"os/user"
	"strconv"
)

// OSUser names the operating-system user running this process, for the
// Actor of administrative events: the account name, else $USER, else
// "uid:N".
func OSUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	return "uid:" + strconv.Itoa(os.Getuid())
}
