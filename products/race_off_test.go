//go:build !race

package products

const raceEnabled = false
