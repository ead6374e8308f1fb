package products

import (
	"strings"

	"github.com/tiercache/productcache/tiercache"
)

// The Cache-Status cache names (RFC 9211), origin-side cache first.
const (
	statusL1 = "productsd-l1"
	statusL2 = "productsd-l2"
)

// statusL1Hit is the header of the common case, kept as a constant so an L1
// hit allocates nothing for it.
const statusL1Hit = statusL1 + "; hit"

// cacheStatus renders the Cache-Status header for an answer from a cache in
// mode, as docs/design.md §4 writes it: L2 first (it is nearer the origin), then L1.
// "stored" is left out where a fill was fenced or skipped, "collapsed" marks
// the tier whose load this request waited on.
func cacheStatus(mode tiercache.Mode, info tiercache.Info) string {
	useL1 := mode == tiercache.ModeTiered || mode == tiercache.ModeL1Only
	useL2 := mode == tiercache.ModeTiered || mode == tiercache.ModeL2Only
	if info.Source == tiercache.SourceL1 {
		return statusL1Hit
	}
	var b strings.Builder
	if useL2 {
		b.WriteString(statusL2)
		if info.Source == tiercache.SourceL2 {
			b.WriteString("; hit")
		} else {
			b.WriteString("; fwd=miss")
			if info.L2Stored {
				b.WriteString("; stored")
			}
		}
		if info.LeaseWaited {
			b.WriteString("; collapsed")
		}
	}
	if useL1 {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(statusL1 + "; fwd=miss")
		if info.L1Stored {
			b.WriteString("; stored")
		}
		if info.Collapsed {
			b.WriteString("; collapsed")
		}
	} else if info.Collapsed && b.Len() > 0 {
		// Without L1 the in-process wait is on the L2 member too.
		if !info.LeaseWaited {
			b.WriteString("; collapsed")
		}
	}
	return b.String()
}
