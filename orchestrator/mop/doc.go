// Package mop writes a plan as a Method of Procedure (MOP) for a change
// advisory board: markdown (CommonMark with GFM tables), and one
// self-contained, printable HTML page made from that markdown with
// goldmark, the timeline drawn as inline SVG.
//
// The MOP says nothing the plan does not: who does each step, what the
// operator types, whose rule it is (the vendor section it cites, or
// upgrader's own), the point of no return, the downtime window and the
// recovery statement, quoted from the release notes with its section, or
// said to be upgrader's own where the documents are silent. Expected
// durations come from earlier runs of the procedure (StepTimes), else
// they are "unknown".
package mop
