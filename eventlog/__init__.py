"""The event log and how it is read: the layer below commands, projections and streams."""
