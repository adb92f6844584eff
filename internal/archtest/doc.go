// Package archtest holds tests that keep the module's shape: imports flow one
// way and only along the arrows each package is allowed (an allow-list test keeps the
// list), every package is documented, and library code never exits the process.
package archtest
