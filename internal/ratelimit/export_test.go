package ratelimit

// Tracked returns how many keys have a bucket of their own: at most
// Config.MaxClients.
func (l *Keyed[K]) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
