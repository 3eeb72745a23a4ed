package replication

import "github.com/dura-dev/dura/replication/nodedb"

// The replicated schedule holds the same alarms as a lone node's.
type (
	Alarm      = nodedb.Alarm
	FiredAlarm = nodedb.FiredAlarm
)
