// Command kube-dryrun-apiserver runs an embedded etcd and kube-apiserver in
// one process, for nsauth's CI to check rendered Kubernetes manifests with
// server-side dry runs (deploy/ci-helm.sh). It is a test tool: etcd listens
// on loopback only, keeps its data in the directory it is given and has no
// authentication of its own.
//
// Usage:
//
//	kube-dryrun-apiserver -etcd-dir DIR [-etcd-client 127.0.0.1:12379] [-etcd-peer 127.0.0.1:12380] -- KUBE-APISERVER-FLAGS...
//
// The kube-apiserver flags must include --etcd-servers pointing at the
// embedded etcd's client address.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("kube-dryrun-apiserver", flag.ContinueOnError)
	etcdDir := fs.String("etcd-dir", "", "etcd data directory (required)")
	etcdClient := fs.String("etcd-client", "127.0.0.1:12379", "etcd client address; must be loopback")
	etcdPeer := fs.String("etcd-peer", "127.0.0.1:12380", "etcd peer address; must be loopback")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *etcdDir == "" {
		fmt.Fprintln(os.Stderr, "kube-dryrun-apiserver: -etcd-dir is required")
		return 2
	}
	etcd, err := startEtcd(*etcdDir, *etcdClient, *etcdPeer)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kube-dryrun-apiserver: starting etcd: %v\n", err)
		return 1
	}
	defer etcd.Close()

	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(fs.Args())
	return cli.Run(cmd)
}

func startEtcd(dir, client, peer string) (*embed.Etcd, error) {
	clientURL, err := loopbackURL(client)
	if err != nil {
		return nil, fmt.Errorf("-etcd-client: %w", err)
	}
	peerURL, err := loopbackURL(peer)
	if err != nil {
		return nil, fmt.Errorf("-etcd-peer: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "dryrun"
	cfg.Dir = dir
	cfg.LogLevel = "error"
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("not ready after 60s")
	}
}

func loopbackURL(hostport string) (*url.URL, error) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%q is not a loopback address", hostport)
	}
	return &url.URL{Scheme: "http", Host: hostport}, nil
}
