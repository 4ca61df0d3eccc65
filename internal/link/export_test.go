package link

// SetAfterClaim installs a hook that runs after a session wrote its
// ownership claim and before its producer fences anyone.
func SetAfterClaim(l *Link, f func()) { l.afterClaim = f }

// SetProduceBuffer sets the producer's budget of unacknowledged payload.
func SetProduceBuffer(l *Link, bytes int) { l.buffer = bytes }
