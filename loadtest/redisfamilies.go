package loadtest

import (
	"context"
	"fmt"
	"strings"
)

// RedisMeter measures the Redis CPU of a run's measured part by command
// family. The engine knows Redis only through it: the harness that talks
// to Redis (loadtest/cluster) implements it.
type RedisMeter interface {
	// Begin takes the reading before the measured part.
	Begin(ctx context.Context) error
	// End takes the reading after it and returns the difference.
	End(ctx context.Context) ([]CommandFamily, error)
}

// CommandFamily is the Redis CPU of one family of commands (reads, fills
// and leases, invalidations, pings, other) over a run: the microseconds
// redis-server spent executing them (INFO commandstats usec), which leave
// out the network and event-loop time INFO cpu counts.
type CommandFamily struct {
	Name     string  `json:"name"`
	Calls    int64   `json:"calls"`
	USec     float64 `json:"usec"`
	USPerReq float64 `json:"us_per_request"`
	// USPerCall is USec / Calls.
	USPerCall float64 `json:"us_per_call"`
	// Nested says that Calls and USec include the commands of the family
	// that scripts and MULTI/EXEC ran, whose time Redis also counts in the
	// script's or EXEC's own (the family "scripts_tx"): such families
	// overlap it and are not to be added to it.
	Nested bool `json:"includes_nested,omitempty"`
}

// RedisCommands is [Summary]'s Redis CPU by command family.
type RedisCommands struct {
	Measured bool            `json:"measured"`
	Families []CommandFamily `json:"families,omitempty"`
	Note     string          `json:"note,omitempty"`
}

// perRequest divides every family's time by the run's requests.
func (rc *RedisCommands) perRequest(reqs int64) {
	for i := range rc.Families {
		f := &rc.Families[i]
		if reqs > 0 {
			f.USPerReq = f.USec / float64(reqs)
		}
		if f.Calls > 0 {
			f.USPerCall = f.USec / float64(f.Calls)
		}
	}
}

// Text is the one-line form: each family's µs per request, with a '*'
// after the name of a family that includes commands run by scripts and
// EXEC (Nested).
func (rc RedisCommands) Text() string {
	if !rc.Measured {
		return "n/a (" + rc.Note + ")"
	}
	parts := make([]string, 0, len(rc.Families))
	for _, f := range rc.Families {
		star := ""
		if f.Nested {
			star = "*"
		}
		parts = append(parts, fmt.Sprintf("%s%s %.2fµs", f.Name, star, f.USPerReq))
	}
	return strings.Join(parts, "  ")
}

// measureRedis runs the measured part between m's two readings.
func measureRedis(ctx, actx context.Context, m RedisMeter, run func() *Summary) *Summary {
	if m == nil {
		s := run()
		s.RedisCommands.Note = "no Redis meter"
		return s
	}
	beginErr := m.Begin(ctx)
	s := run()
	if beginErr != nil {
		s.RedisCommands.Note = beginErr.Error()
		return s
	}
	fams, err := m.End(actx)
	if err != nil {
		s.RedisCommands.Note = err.Error()
		return s
	}
	s.RedisCommands = RedisCommands{Measured: true, Families: fams,
		Note: "INFO commandstats of the whole redis-server: other clients of it count too; " +
			"a family marked * (includes_nested) also counts the commands scripts and EXEC ran, " +
			"which scripts_tx counts in its own time: the families overlap and do not add up"}
	s.RedisCommands.perRequest(s.Requests)
	return s
}
