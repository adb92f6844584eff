// Package archtest holds tests that keep the module's shape: imports flow one
// way and only along the arrows each package's allow-list names, every
// package is documented and has its row in README's package table, and
// library code never exits the process.
package archtest
