package collector

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// rateLimiter is a token bucket per client IP: rate requests a second with
// a burst of four seconds' worth. Buckets idle long enough to be full again
// are forgotten, so memory follows the number of active clients.
type rateLimiter struct {
	rate  float64
	burst float64
	seed  maphash.Seed
	shard [64]limiterShard
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(perSecond float64) *rateLimiter {
	rl := &rateLimiter{rate: perSecond, burst: 4 * perSecond, seed: maphash.MakeSeed()}
	for i := range rl.shard {
		rl.shard[i].buckets = make(map[netip.Addr]*bucket)
	}
	return rl
}

// allow takes a token for ip and reports whether there was one.
func (rl *rateLimiter) allow(ip netip.Addr, now time.Time) bool {
	if rl == nil || rl.rate <= 0 {
		return true
	}
	b16 := ip.As16()
	sh := &rl.shard[maphash.Bytes(rl.seed, b16[:])%uint64(len(rl.shard))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now.Sub(sh.swept) > time.Minute {
		rl.sweep(sh, now)
	}
	b := sh.buckets[ip]
	if b == nil {
		b = &bucket{tokens: rl.burst, last: now}
		sh.buckets[ip] = b
	} else {
		b.tokens += now.Sub(b.last).Seconds() * rl.rate
		if b.tokens > rl.burst {
			b.tokens = rl.burst
		}
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep drops buckets that have refilled completely.
func (rl *rateLimiter) sweep(sh *limiterShard, now time.Time) {
	full := time.Duration(rl.burst / rl.rate * float64(time.Second))
	for ip, b := range sh.buckets {
		if now.Sub(b.last) > full {
			delete(sh.buckets, ip)
		}
	}
	sh.swept = now
}
