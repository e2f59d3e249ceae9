"""FHIR R4 (KR Core) in and out of releases: code systems, reading, mapping, load, export."""
