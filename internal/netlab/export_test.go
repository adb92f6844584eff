package netlab

// TryApplyRules is ApplyRules returning the error instead of failing the
// test; a ruleset that loads is taken out again at once.
func TryApplyRules(h *Host, tool RuleTool, rules string) error {
	r, err := h.applyRules(tool, rules)
	if err == nil {
		err = r.remove()
	}
	return err
}
