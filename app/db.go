package app

// NoSuchUser is the user the database checks log in as when the URL names
// none: a name no one gives a role or account (a colon in it; 13 bytes,
// under MySQL's 32 and PostgreSQL's 63). A server answers it as it answers
// a wrong password, which says it accepts connections; no password is ever
// sent.
const NoSuchUser = "reach:no-user"

// otherProtocol is the Result for a peer whose first bytes are not the
// protocol want: WrongProtocol, naming what they look like.
func otherProtocol(want string, b []byte) Result {
	return Result{Cause: WrongProtocol, State: "not " + want,
		Detail: "the server answered with " + Quote(b) + ", " + Sniff(b).Describe() + ", not " + want}
}
