package config

// defaultWorkers is WSRELAY_WORKERS when it is not set: one event-loop
// poller fewer than procs, the number of Ps the Go runtime schedules
// goroutines on (GOMAXPROCS: the CPUs, a container's CPU limit since Go
// 1.25, or the GOMAXPROCS variable), and at least one.
//
// Why one fewer: a poller blocks in epoll_wait while it holds its P, so with
// a poller on every P the runtime's monitor (sysmon) finds every P in a
// system call, takes one back each time it looks and never slows down from
// looking every 20 µs. One P left over for the drain workers, timers and the
// garbage collector lets it back off to every 10 ms: on two CPUs, one-to-one
// traffic then costs about a fifth less CPU per message (BENCHMARKS.md).
func defaultWorkers(procs int) int { return max(1, procs-1) }
