// Package meter reads what the load generator's engine (package loadtest)
// cannot see over HTTP: the CPU time of Redis and of the database's
// backends ([CPU], a [loadtest.CPUMeter]) and the versions the database
// stores ([StoredVersions], for the lost-write check). The commands that
// set up or name a cluster (cmd/loadtest, loadtest/compare,
// loadtest/chaos) supply them; the engine itself links neither pgx nor
// go-redis.
package meter
