//go:build race

package daemon

// raceEnabled shortens the long flood tests, which the race detector slows
// tenfold.
const raceEnabled = true
