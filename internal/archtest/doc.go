// Package archtest holds tests that keep the module's shape: imports flow one
// way, every package is documented, and library code never exits the process.
package archtest
