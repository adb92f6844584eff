package doctor

import "context"

// Check is one rung of the ladder. Run gets a State holding the target, the
// options and the evidence of the earlier checks that Reads names, nothing
// else, and stores its own evidence in it (the State fields that name the
// check); later stages see only that. So what a check depends on is
// declared, checks of one stage share nothing they write, and
// TestLadderOrder holds DefaultLadder to the declarations.
type Check interface {
	Name() string
	// Reads names the earlier checks whose evidence Run reads.
	Reads() []string
	Run(ctx context.Context, s *State) CheckResult
}

// CheckFunc adapts a function to a Check.
type CheckFunc struct {
	CheckName string
	ReadsFrom []string // see Check.Reads
	Fn        func(ctx context.Context, s *State) CheckResult
}

func (c CheckFunc) Name() string                                  { return c.CheckName }
func (c CheckFunc) Reads() []string                               { return c.ReadsFrom }
func (c CheckFunc) Run(ctx context.Context, s *State) CheckResult { return c.Fn(ctx, s) }

// Stage is a set of independent checks, run concurrently. Stages run in order.
type Stage []Check

// DefaultLadder is the ladder Run walks when Options.Ladder is nil. Each
// check reads only from checks of earlier stages.
func DefaultLadder() []Stage {
	return []Stage{
		{DNSCheck, CountersCheck},
		{TCPCheck, RouteCheck, ICMPCheck, HostCheck, AgentCountersCheck},
		{SocketsCheck, FirewallCheck, NATCheck, PathCheck, KernelCheck, LayersCheck},
	}
}

// Status is how a check ended.
type Status string

const (
	Pass  Status = "pass"  // looked and found nothing wrong
	Fail  Status = "fail"  // found a problem
	Info  Status = "info"  // looked; what it saw is context, not a verdict
	Skip  Status = "skip"  // did not apply or could not run here; Detail says why
	Error Status = "error" // the check itself failed; Detail says how
)

// CheckResult is what a check returns.
type CheckResult struct {
	Status   Status
	Detail   string    // what it looked at and what it saw, one line
	Findings []Finding // what it concluded, if anything
}

// CheckRecord is one rung of the ladder as the report shows it.
type CheckRecord struct {
	Name       string  `json:"name"`
	Status     Status  `json:"status"`
	Detail     string  `json:"detail"`
	DurationMS float64 `json:"duration_ms"`
}
