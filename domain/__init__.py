"""Pure domain: the ontology catalogs, aggregates and their events. No I/O, no web framework.

Aggregates build on `eventsourcing.domain`, which is itself pure (no persistence imports).
"""
