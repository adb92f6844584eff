// Package hub is reach watch as a library, and the agents' hub in it. A
// Watch composes the monitor (probes, history, alerts), the doctor (why an
// endpoint went down), the dashboard and, when reach.yaml has an agents:
// section, a Hub: it hands each agent its probe list from the Config,
// ingests their result batches into the monitor (source = the agent), draws
// the source × target connectivity matrix, and explains a failing pair by
// asking the agent on its target host.
//
// Agents know the hub only over the network, through the protocol in
// package agent; the hub sits above agent, monitor, web and doctor, and
// below the CLI, which only parses flags and renders.
package hub
