package loopbackhost_test

import (
	"fmt"
	"net/url"

	"github.com/nsauth/nsauth/pkg/loopbackhost"
)

func ExampleIs() {
	for _, raw := range []string{"http://LOCALHOST:8080", "http://[::1]:8080", "http://auth.example.com"} {
		u, _ := url.Parse(raw)
		fmt.Println(u.Hostname(), loopbackhost.Is(u.Hostname()))
	}
	// Output:
	// LOCALHOST true
	// ::1 true
	// auth.example.com false
}

func ExampleURLHosts() {
	fmt.Println(loopbackhost.URLHosts())
	// Output: [127.0.0.1 [::1] localhost]
}
