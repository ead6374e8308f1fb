package products

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Product is one row of the products table.
type Product struct {
	ID          uuid.UUID
	Name        string
	Description string
	PriceCents  int64
	Version     int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TimeFormat is how timestamps appear in the API: RFC 3339 in UTC with
// microseconds, the precision PostgreSQL keeps.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// productJSON is the wire form of a Product (docs/design.md §4).
type productJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	PriceCents  int64  `json:"price_cents"`
	Version     int64  `json:"version"`
	CreatedAt   string `json:"created_at"`
	UpdatedAt   string `json:"updated_at"`
}

func (p Product) wire() productJSON {
	return productJSON{
		ID:          p.ID.String(),
		Name:        p.Name,
		Description: p.Description,
		PriceCents:  p.PriceCents,
		Version:     p.Version,
		CreatedAt:   p.CreatedAt.UTC().Format(TimeFormat),
		UpdatedAt:   p.UpdatedAt.UTC().Format(TimeFormat),
	}
}

// MarshalJSON encodes p as the API shows it.
func (p Product) MarshalJSON() ([]byte, error) {
	return json.Marshal(p.wire())
}

// Page is one page of the product list, ordered by id.
type Page struct {
	Items []Product
	// NextAfter is the id to pass as after for the next page; uuid.Nil on
	// the last page.
	NextAfter uuid.UUID
}

// MarshalJSON encodes pg as {"items":[...],"next_after":"<id>"|null}.
func (pg Page) MarshalJSON() ([]byte, error) {
	out := struct {
		Items     []productJSON `json:"items"`
		NextAfter *string       `json:"next_after"`
	}{Items: make([]productJSON, len(pg.Items))}
	for i, p := range pg.Items {
		out.Items[i] = p.wire()
	}
	if pg.NextAfter != uuid.Nil {
		s := pg.NextAfter.String()
		out.NextAfter = &s
	}
	return json.Marshal(out)
}
