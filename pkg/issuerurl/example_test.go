package issuerurl_test

import (
	"errors"
	"fmt"

	"github.com/nsauth/nsauth/pkg/issuerurl"
)

func ExampleCheck() {
	for _, raw := range []string{"https://auth.example.com", "http://127.0.0.1:8080", "http://auth.example.com"} {
		_, err := issuerurl.Check(raw, issuerurl.Options{})
		fmt.Println(raw, err == nil, errors.Is(err, issuerurl.ErrInsecureHTTP))
	}
	// Output:
	// https://auth.example.com true false
	// http://127.0.0.1:8080 true false
	// http://auth.example.com false true
}

func ExampleOptions() {
	// A provider with a path, as some cloud providers have.
	u, err := issuerurl.Check("https://oidc.eks.eu-west-1.amazonaws.com/id/ABC", issuerurl.Options{AllowPath: true})
	fmt.Println(u.Path, err)
	// Output: /id/ABC <nil>
}
