// Package httpsafe serves HTTP to clients reach cannot trust. Every server
// reach runs (the dashboard and hub of reach watch, the agent) goes through
// Serve, which bounds how long a client may take to send a request, to read
// the answer and to idle between requests; how large a body it may send; and
// how many connections it may hold, in total and per client address, so that
// the file descriptors the probes and the store need stay free whatever the
// clients do. Equal compares secrets without telling their lengths.
package httpsafe
