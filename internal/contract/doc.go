// Package contract keeps nsauth honest to the API it claims to implement.
// It holds no product code, only tests and test data:
//
//   - testdata/original is Neosync's mgmt/v1alpha1/auth.proto exactly as
//     the spec describes it, without nsauth's additions. `buf breaking`
//     checks our proto/ against it (see .ci/run).
//   - originalpb is a Connect client generated from it. The tests drive a
//     real `nsauth serve` with that client over Connect JSON, Connect
//     binary, gRPC and gRPC-Web, and with HTTP GET for the two
//     NO_SIDE_EFFECTS methods, as an unmodified Neosync client would.
//   - grpcurl, a client nobody here wrote, lists and calls the service
//     through server reflection.
//
// originalpb registers the same protobuf full names (mgmt.v1alpha1.*) as
// our gen/ packages, and the protobuf runtime refuses two registrations of
// one name in a binary. So the tests here never import gen/ or anything
// that does (internal/cli, internal/server, ...): they build cmd/nsauth-server and
// run it as a separate process.
package contract

//go:generate go tool -modfile=../../tools/go.mod buf generate --template buf.gen.original.yaml
