// Package server wires the AuthService into one HTTP listener that speaks
// Connect (JSON and binary), gRPC and gRPC-Web over HTTP/1.1, h2c and TLS,
// next to gRPC health checking, server reflection, Prometheus metrics and
// liveness/readiness endpoints.
//
// Interceptors run in this order, outermost first:
//
//  1. metrics: counts every call by procedure and final code, including
//     calls refused by later interceptors;
//  2. logging: one line per call, never with request contents;
//  3. rate limit: per client address, on the procedures that reach the
//     provider (before authn, so floods cost no verification);
//  4. authn: bearer-token verification (absent when auth is disabled);
//  5. the handler.
package server
