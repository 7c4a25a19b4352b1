"""RunbookJob, the hot kind: `decide` (pure), `writes` (its patches and Events, pure), `controller` (I/O)."""
