"""The live submitter: placements to real clusters (kubernetes client), watches, Prometheus."""
