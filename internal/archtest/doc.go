// Package archtest holds tests that keep the module's shape: imports flow one
// way and only along the arrows each package's allow-list names, every
// package is documented and has its row in README's package table,
// library code never exits the process, and tests that build network
// namespaces are in *lab_linux_test.go files.
package archtest
