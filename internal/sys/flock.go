package sys

import "errors"

// ErrLocked is returned by TryLock when another open file (of this
// process or another) holds the lock.
var ErrLocked = errors.New("sys: file locked by another process")
