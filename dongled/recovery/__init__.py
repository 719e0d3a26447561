"""When a line does not come back: the recovery ladder, its runner and the line-down watch."""
