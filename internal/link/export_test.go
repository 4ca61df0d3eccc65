package link

// SetProduceBuffer sets the producer's budget of unacknowledged payload.
func SetProduceBuffer(l *Link, bytes int) { l.buffer = bytes }
