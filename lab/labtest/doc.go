// Package labtest holds the test helpers that the in-VM lab suites under
// tests/lab share: loading a fresh kfw module per test with a check of the
// kernel log, network namespaces and the client/router/server topology
// that go away with the test, polling with a hang limit, UDP sockets and
// raw packets in a namespace, /proc/kfw reads, netlink clients and
// subscribers, and the test binary doubling as an unprivileged helper
// process.
//
// Every helper takes a testing.TB, fails the test on error (t.Fatal, or
// t.Error in a cleanup) and undoes what it set up with t.Cleanup. The
// helpers change the kernel state of the machine they run on: they are
// meant for a lab VM (build tag labvm, see lab/README.md), not the host.
// Packet building and other pure functions live in lab/guest, where they
// can be used outside tests.
//
// Where the suites differ on purpose, the difference is a parameter: each
// suite's hang limit and poll interval (WaitFor), its namespace name
// prefix (NewNetNS), whether loading the module also watches the kernel
// log (LoadModule, LoadModuleNoLogCheck).
package labtest
