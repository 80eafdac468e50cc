// Package servercmd holds the commands of nsauth-server that the terminal
// client does not need: serve, users, groups, clients, keys, federation, audit and
// bench here, apps and sessions in package appscmd, connectors in package
// connectorscmd, backup and restore in package backupcmd, all listed in
// [Commands]; what the store-backed ones share is package storecmd. They
// are apart from package cli because they link the server (the built-in
// provider, the stores, the metrics), whose package initialisation alone
// takes longer than the whole of `nsauth token`; nsauth runs them through
// nsauth-server ([cli.ServerStandIns]).
package servercmd

import (
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/appscmd"
	"github.com/nsauth/nsauth/internal/cli/servercmd/backupcmd"
	"github.com/nsauth/nsauth/internal/cli/servercmd/connectorscmd"
)

// Commands are the server's subcommands, for [cli.NewRootCommand].
var Commands = []cli.NewCommand{newServeCommand, backupcmd.NewBackupCommand, backupcmd.NewRestoreCommand, newUsersCommand, newGroupsCommand, newClientsCommand, appscmd.NewAppsCommand, appscmd.NewSessionsCommand, connectorscmd.NewConnectorsCommand, newKeysCommand, newFederationCommand, newAuditCommand, newBenchCommand}
