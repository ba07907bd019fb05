package engine

import "time"

// SetClock has e see the time as now returns it: exemptions expire.
func SetClock(e *Engine, now func() time.Time) { e.now = now }
