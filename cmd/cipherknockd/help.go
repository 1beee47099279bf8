package main

// The examples and exit status each command's --help shows.

const rootHelp = `The cipherknock daemon: sniffs encrypted port knocks and opens the firewall for them.

Every command reads /etc/cipherknock/cipherknockd.conf unless given -c FILE.

Examples:
  cipherknockd new-config                 # a first configuration, realm = this host's name
  cipherknockd check-config
  systemctl enable --now cipherknockd     # runs: cipherknockd run
  cipherknockd status

Exit status: 0 on success, 1 on a runtime error (the daemon is not running,
the firewall failed), 2 on a configuration or usage error.`

func (*runCmd) Help() string {
	return `Examples:
  cipherknockd run                                # /etc/cipherknock/cipherknockd.conf
  cipherknockd run -c /srv/knock/cipherknockd.conf
  cipherknockd run --demo                         # scripts/demo.sh's configuration

SIGHUP reloads the configuration, SIGTERM and SIGINT stop the daemon and
leave the firewall closed; grants expire in the kernel.

Exit status: 0 after a signal stopped it, 1 on a runtime error (capture,
firewall), 2 on a configuration error (nothing on the firewall changed).`
}

func (*checkConfigCmd) Help() string {
	return `Examples:
  cipherknockd check-config
  cipherknockd check-config -c new.conf && systemctl reload cipherknockd

Exit status: 0 when the file is good, 2 when it is not (every error printed
as FILE:LINE: message).`
}

func (*statusCmd) Help() string {
	return `Examples:
  cipherknockd status
  cipherknockd status --json

Exit status: 0, or 1 when the daemon is not running.`
}

func (*reloadCmd) Help() string {
	return `Examples:
  cipherknockd reload          # the same as systemctl reload cipherknockd

A configuration with errors is refused and the running one kept.

Exit status: 0 when the daemon reloaded, 1 when it is not running or
refused the new configuration.`
}

func (*stopCmd) Help() string {
	return `Examples:
  cipherknockd stop            # the drops stay: the ports stay closed

The firewall objects stay in the kernel, and open grants expire there on
time; cipherknockd remove takes them away.

Exit status: 0 when the daemon stopped (or was not running), 1 when it
could not be asked.`
}

func (*revokeCmd) Help() string {
	return `Examples:
  cipherknockd revoke 203.0.113.9             # every grant of this address
  cipherknockd revoke 203.0.113.9 tcp/22      # only this one
  cipherknockd revoke --user alice            # every grant alice's knocks opened

Exit status: 0 when the grants were closed (it says how many), 1 when the
daemon is not running or the firewall refused, 2 on a usage error.`
}

func (*removeCmd) Help() string {
	return `Examples:
  cipherknockd remove          # before an uninstall

It stops the daemon if it runs and removes every firewall object it made,
then prints which ports become reachable on this host.

Exit status: 0 when everything was removed, 1 when a teardown failed, 2 on
a configuration error.`
}

func (*doctorCmd) Help() string {
	return `Examples:
  cipherknockd doctor
  cipherknockd doctor -c /etc/cipherknock/cipherknockd.conf --json

Exit status: 0 with the report (which says what is missing), 2 on a usage
or configuration error.`
}

func (*newConfigCmd) Help() string {
	return `Examples:
  cipherknockd new-config                       # /etc/cipherknock/cipherknockd.conf
  cipherknockd new-config -c test.conf --realm gate.example.net

Exit status: 0 when the file was written, 1 on a system error, 2 when the
file exists or the realm is not allowed.`
}

func (versionCmd) Help() string {
	return `Examples:
  cipherknockd version
  cipherknockd --version

Exit status: 0.`
}
