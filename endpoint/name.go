package endpoint

// ValidName reports whether s may name an endpoint or a host of the fleet
// (an agent): 1-64 letters, digits, '.', '_' or '-', starting with a letter
// or digit. Names go into metric labels and URL path segments, so they stay
// plain; the monitor's config, the hub's config and the agent all check them
// here.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
