// Package nsauth is the root of the nsauth module. It holds no code: the
// product lives under cmd/, internal/ and pkg/.
//
// Regenerate the API code from proto/ with:
//
//	go generate .
package nsauth

//go:generate go tool -modfile=tools/go.mod buf generate
